"""Random arguments and random evidence files: never a traceback; invalid input writes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from ..examples import fraction
from .conftest import MakeScratch, Scratch

COMMANDS = [
    "submit",
    "start",
    "block",
    "integrate",
    "remediate",
    "resume",
    "apply",
    "show",
    "history",
    "list",
    "blocked",
    "recover",
    "verify",
    "diagram",
    "init",
]
OPTIONS = [
    "--sha",
    "--branch",
    "--reason",
    "--detail",
    "--conflict-file",
    "--evidence-file",
    "--main-sha",
    "--force",
    "--why",
    "--state",
    "--since",
    "--format",
    "--counts",
    "--owner",
    "--idempotency-key",
    "--expected-seq",
    "--help",
]
REASONS = [
    "merge_conflict",
    "checks_failed",
    "main_moved",
    "precondition_failed",
    "apply_interrupted",
    "push_rejected",
    "external",
    "checks_timed_out",
]
SHAPED = [
    "block",
    "submit",
    "resume",
    "integrate",
    "history",
    "show",
    "start",
    "remediate",
    "apply",
    "blocked",
]
# Any text a process argument can carry: no NUL, no lone surrogate.
ARG_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | ARG_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ARG_TEXT, inner, max_size=3),
    max_leaves=8,
)
CHECK = st.fixed_dictionaries(
    {"name": ARG_TEXT, "exit_code": st.none() | st.integers(-3, 300)},
    optional={"output_tail": ARG_TEXT, "timed_out": st.booleans()},
)
EVIDENCE = st.fixed_dictionaries(
    {},
    optional={
        "conflicted_paths": st.lists(ARG_TEXT | st.sampled_from(["a.txt", "../x", "/etc"])),
        "checks": st.lists(CHECK, max_size=2),
        "diagnostic": ARG_TEXT | st.none(),
        "main_attempts": st.lists(st.sampled_from(["0" * 40, "abc", "XYZ"]), max_size=2),
        "files": st.lists(ARG_TEXT, max_size=2),
        "lease_owner": ARG_TEXT | st.none(),
        "lease_since": st.sampled_from(["2026-01-01T00:00:00Z", "soon", ""]) | st.none(),
        "surprise": JSON,
    },
)
EVIDENCE_BYTES = (
    EVIDENCE.map(lambda d: json.dumps(d).encode())
    | JSON.map(lambda d: json.dumps(d).encode())
    | st.binary(max_size=200)
)


def _values(s: Scratch) -> st.SearchStrategy[str]:
    known = list(s.shas.values())
    return st.one_of(
        st.sampled_from(["new-greeting", "add-docs", "other", "nobody", "Bad Slug", "-x", ""]),
        st.sampled_from([*known, *(k[:7] for k in known), "0" * 40, "XYZ", "abc"]),
        st.sampled_from(["merge_conflict", "checks_failed", "external", "pending", "2h", "-"]),
        st.sampled_from(["EVIDENCE", "/nonexistent", "mermaid", "dot", "1970-01-01"]),
        ARG_TEXT,
    )


def _shaped(draw: st.DrawFn, s: Scratch) -> list[str]:
    """A well-formed command line with mostly plausible values, so many get past validation."""
    v = _values(s)

    def mostly(good: list[str]) -> str:
        return draw(st.sampled_from(good)) if draw(st.integers(0, 3)) else draw(v)

    slug = mostly(["new-greeting", "add-docs", "other"])
    sha = mostly(list(s.shas.values()))
    reason = mostly(REASONS)
    extra = [draw(st.sampled_from(OPTIONS)), draw(v)] if not draw(st.integers(0, 4)) else []
    match draw(st.sampled_from(SHAPED)):
        case "block":
            base = ["block", slug, "--reason", reason, "--evidence-file", "EVIDENCE"]
            if draw(st.booleans()):
                base += ["--conflict-file", draw(v), "--detail", draw(v)]
        case "submit":
            base = ["submit", slug, "--sha", sha, "--branch", draw(st.just(slug) | v)]
        case "resume":
            base = ["resume", slug, "--sha", sha, "--force", "--why", draw(v)]
        case "integrate":
            base = ["integrate", slug, "--main-sha", sha]
        case "history" | "show" | "start" | "remediate" | "apply" as command:
            base = [command, slug]
        case _:
            base = ["blocked", "--since", draw(v), "--reason", reason]
    return base + extra


@st.composite
def invocations(draw: st.DrawFn, s: Scratch) -> tuple[list[str], bytes, bytes | None]:
    """A command line (shaped, or any tokens), an evidence file's bytes, maybe stdin."""
    if draw(st.integers(0, 3)):
        tokens = _shaped(draw, s)
    else:
        tokens = [
            draw(st.sampled_from(COMMANDS)),
            *draw(st.lists(st.sampled_from(OPTIONS) | _values(s), max_size=6)),
        ]
    evidence = draw(EVIDENCE_BYTES)
    path = str(s.root / "evidence.json")
    args = [path if t == "EVIDENCE" else t for t in tokens]
    if draw(st.booleans()):
        args.insert(0, "--json")
    stdin = draw(st.none() | EVIDENCE_BYTES)
    return args, evidence, stdin


def _check_one(s: Scratch, data: st.DataObject) -> None:
    args, evidence, stdin = data.draw(invocations(s))
    (s.root / "evidence.json").write_bytes(evidence)
    before = s.snapshot()
    r = s(*args, stdin=None if stdin is None else stdin.decode("utf-8", "replace"))
    event(f"exit {r.code}")
    assert "Traceback" not in r.stdout
    assert r.code in (0, 2, 3, 4), (args, r.stderr)
    if r.code in (2, 4):
        assert r.stderr.count("\n") == 1, r.stderr
        assert s.snapshot() == before, args
    if args[0] == "--json" and not {"--help", "-h"} & set(args):
        doc: Any = json.loads(r.stdout)
        assert doc["exit_code"] == r.code
        assert ("error" in doc) == (r.code in (1, 2, 4))


@fraction(1.6)  # each example runs the CLI as a subprocess
@given(data=st.data())
def test_random_arguments_never_trace_and_invalid_input_writes_nothing(
    make_scratch: MakeScratch, data: st.DataObject
) -> None:
    """Random commands, options and evidence: exit 0/2/3/4, one error line, no write on 2/4."""
    _check_one(make_scratch("blocked"), data)


@pytest.mark.slow
@fraction(1 / 3)
@given(data=st.data())
def test_random_arguments_thorough(make_scratch: MakeScratch, data: st.DataObject) -> None:
    """The same property with many more examples (slow suite)."""
    _check_one(make_scratch("blocked"), data)
