"""Golden outputs, human and JSON, with shas, times, hosts and paths normalized.

Regenerate after an intended change with ``MERGEGATE_UPDATE_GOLDEN=1 pytest tests/cli``
and review the diff: these files are the documented output contract.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from .conftest import MakeScratch, Scratch, git

GOLDEN = Path(__file__).parent / "golden"
_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?Z?")
_OWNER = re.compile(r"@[^\s:\"]+:\d+(?::\d+)?")
_HEX = re.compile(r"\b[0-9a-f]{7,40}\b")
# Spans measured against the clock (list's ELAPSED and ETA), human and JSON.
# A span's column is padded to its width, so the padding is masked with it.
_SPAN = re.compile(r"(?<![\w<])~?\d+[dhms](?:\d\d[hms])?\b( *)")
_SECONDS = re.compile(r'("(?:elapsed|eta|typical_apply)_seconds": )\d+')


def normalize(text: str, s: Scratch) -> str:
    """``text`` with every sha named, every time <time>, every host:pid and root path masked."""
    known = dict.fromkeys(git(s.bare, "rev-list", "--all").split())
    labels = {sha: name for name, sha in s.shas.items()}
    found: dict[str, str] = {}

    def sha(match: re.Match[str]) -> str:
        token = match.group(0)
        for full in known:
            if full.startswith(token) and len(token) in (7, 12, 40):
                label = labels.get(full) or found.setdefault(full, f"commit{len(found) + 1}")
                return f"<{label}:{len(token)}>"
        return token

    text = text.replace(str(s.root), "<root>")
    text = _TIME.sub("<time>", text)
    text = _OWNER.sub("@<host>:<pid>", text)
    text = _HEX.sub(sha, text)
    text = _SECONDS.sub(r"\1<seconds>", text)
    return _SPAN.sub(lambda m: "<span>" + " " * bool(m.group(1)), text)


def check(name: str, text: str) -> None:
    """Compare ``text`` with golden/<name>; rewrite it when MERGEGATE_UPDATE_GOLDEN=1."""
    path = GOLDEN / name
    if os.environ.get("MERGEGATE_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"no golden file {path}; run with MERGEGATE_UPDATE_GOLDEN=1"
    assert text == path.read_text()


CASES = [
    ("list", ("list",)),
    ("show-blocked", ("show", "new-greeting")),
    ("show-integrated", ("show", "add-docs")),
    ("history", ("history", "new-greeting")),
    ("blocked", ("blocked",)),
    ("remediate", ("remediate", "new-greeting")),
]


@pytest.mark.parametrize(("name", "args"), CASES, ids=[c[0] for c in CASES])
def test_golden_human_and_json(blocked: Scratch, name: str, args: tuple[str, ...]) -> None:
    """The human and the JSON output of each command match their golden files."""
    human = blocked(*args)
    assert human.code == 0, human.stderr
    check(f"{name}.txt", normalize(human.stdout, blocked))
    if name == "remediate":
        # The move is done; JSON of the same move would be an illegal second one.
        return
    doc = blocked("--json", *args)
    assert doc.code == 0
    check(f"{name}.json", normalize(doc.stdout, blocked))


def test_golden_submit_and_error(scratch: Scratch) -> None:
    """A submit, its repeat, and an illegal move's stderr line and JSON error document."""
    sha = scratch.shas["other"]
    first = scratch("submit", "other", "--sha", sha)
    repeat = scratch("submit", "other", "--sha", sha)
    error = scratch("remediate", "other")
    error_doc = scratch("--json", "remediate", "other")
    text = "\n".join(
        [first.stdout, repeat.stdout, f"exit {error.code}: {error.stderr}", error_doc.stdout]
    )
    check("submit-and-error.txt", normalize(text, scratch))


@pytest.mark.parametrize("mode", ["txt", "json"])
def test_golden_apply_blocked(make_scratch: MakeScratch, mode: str) -> None:
    """The output of an apply that ends blocked (exit 3), human and JSON."""
    s = make_scratch("ready")
    for slug in ("add-docs", "new-greeting"):
        assert s("submit", slug, "--sha", s.shas[slug]).code == 0
    assert s("apply").code == 0
    r = s("--json", "apply") if mode == "json" else s("apply")
    assert r.code == 3
    assert r.stderr == ""
    check(f"apply-blocked.{mode}", normalize(r.stdout, s))
