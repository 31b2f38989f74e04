"""The read fast path (cli/fastread.py): the same bytes and exit code as the path through click."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mergegate.cli import _fastgate, _faststore, fastread
from mergegate.persistence.migrations import MIGRATIONS
from mergegate.statemachine import TABLE, Event, State

from .conftest import MakeScratch, Result, Scratch, _env

# Runs the command line through click only (main.run), never the fast path.
_THROUGH_CLICK = "import sys; from mergegate.cli.main import run; sys.exit(run(sys.argv[1:]))"


def _both(s: Scratch, *args: str) -> tuple[Result, Result]:
    """``mergegate --repo <bare> ARGS`` as the console script runs it, and through click."""
    runs = []
    for argv in (["-m", "mergegate.cli"], ["-c", _THROUGH_CLICK]):
        done = subprocess.run(
            [sys.executable, *argv, "--repo", str(s.bare), *args],
            cwd=s.root,
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        runs.append(Result(done.returncode, done.stdout, done.stderr))
    return runs[0], runs[1]


def _fast(s: Scratch, *args: str) -> bool:
    """Whether the fast path answers ``ARGS`` (run in a subprocess: it reads the environment)."""
    code = (
        "import sys; from mergegate.cli.fastread import answer; "
        "print(answer(sys.argv[1:]) is not None)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "--repo", str(s.bare), *args],
        cwd=s.root,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip() == "True"


# What moves between two runs of `list` a moment apart: the clock and the spans from it.
_NOW_KEYS = ("now", "elapsed_seconds", "eta", "eta_seconds")


def _steady(out: str) -> str:
    if out.startswith("{"):
        doc = json.loads(out)
        for row in doc.get("result", {}).get("candidates", []):
            for key in _NOW_KEYS:
                row.pop(key, None)
        doc.get("result", {}).pop("now", None)
        return json.dumps(doc, sort_keys=True)
    steady = re.sub(r"~?\b\d+[smhd](\d\d[smh])?\b", "SPAN", out)
    # A span's width moves with the clock too (9s, then 10s a moment later), and
    # its table column with it: where a span was, padding is compared as one space.
    return steady if steady == out else re.sub(r" +", " ", steady)


def _same(s: Scratch, *args: str, fast: bool = True) -> None:
    assert _fast(s, *args) is fast
    quick, slow = _both(s, *args)
    assert quick.code == slow.code
    assert _steady(quick.stdout) == _steady(slow.stdout)
    assert quick.stderr == slow.stderr


def test_copies_agree_with_their_sources() -> None:
    """The state sets, events and schema version the fast path copies are the sources' own."""
    assert tuple(st.value for st in State) == _faststore.STATES
    assert {e.value for e in Event} == _faststore.EVENTS
    assert tuple(st.value for st in State if st in TABLE.active) == _faststore.ACTIVE
    assert {st.value for st in TABLE.queued} == _faststore.QUEUED
    assert {st.value for st in TABLE.leased} == _faststore.LEASED
    assert {st.value for st in TABLE.carrying_blocked} == _faststore.CARRYING_BLOCKED
    assert MIGRATIONS[-1].version == _faststore.SCHEMA_VERSION


@pytest.mark.parametrize(
    "form",
    [("show", "other"), ("--json", "show", "other"), ("show", "other", "--json")],
    ids=["text", "json-before", "json-after"],
)
def test_show_of_a_pending_candidate(scratch: Scratch, form: tuple[str, ...]) -> None:
    """show of a pending candidate: the fast path answers, with the bytes click's path writes."""
    assert scratch("submit", "other", "--sha", scratch.shas["other"]).code == 0
    _same(scratch, *form)


def test_show_and_list_with_an_apply_under_way(scratch: Scratch) -> None:
    """A candidate applying under the lease and two queued behind it: slots, positions, waits."""
    for branch in ("other", "add-docs", "new-greeting"):
        assert scratch("submit", branch, "--sha", scratch.shas[branch]).code == 0
    assert scratch("start", "add-docs").code == 0
    # show of a leased candidate steps aside: the lease's holder is judged there.
    _same(scratch, "show", "add-docs", fast=False)
    for args in (("list",), ("--json", "list")):
        _same(scratch, *args)


def test_list_and_show_after_an_integration(make_scratch: MakeScratch) -> None:
    """An integrated candidate, and the typical apply time it gives the queue's ETA."""
    s = make_scratch("blocked")
    assert s("withdraw", "new-greeting", "--why", "gone").code == 0
    assert s("submit", "other", "--sha", s.shas["other"]).code == 0
    for args in (
        ("show", "add-docs"),
        ("--json", "show", "add-docs"),
        ("list",),
        ("list", "--json"),
    ):
        _same(s, *args)


def test_a_paused_queue_is_left_to_click_and_gives_no_eta(make_scratch: MakeScratch) -> None:
    """Paused, a queued candidate shows no ETA (`-`), only what it waits for; click answers."""
    s = make_scratch("blocked")
    assert s("withdraw", "new-greeting", "--why", "gone").code == 0
    assert s("submit", "other", "--sha", s.shas["other"]).code == 0
    assert "~" in s("list").stdout  # the integration gives the queue a typical apply time
    assert s("--actor", "ana", "pause", "--why", "freeze").code == 0
    for args in (("list",), ("--json", "list")):
        _same(s, *args, fast=False)
    row = next(line for line in s("list").stdout.splitlines() if " other " in line)
    assert "~" not in row, row
    assert row.rstrip().endswith("the unpause: paused by ana"), row
    doc = s("--json", "list").doc["result"]["candidates"]
    assert [(r["slug"], r["eta"]) for r in doc] == [("other", None)]


def test_an_empty_queue(scratch: Scratch) -> None:
    """list of a store with no candidate."""
    _same(scratch, "list")
    _same(scratch, "--json", "list")


@pytest.mark.parametrize(
    "args",
    [
        ("show", "new-greeting"),
        ("--json", "show", "new-greeting"),
        ("list",),
        ("show", "nobody"),
        ("--json", "show", "nobody"),
        ("show", "Not-A-Slug"),
        ("list", "--all"),
    ],
    ids=["blocked", "blocked-json", "list-blocked", "unknown", "unknown-json", "bad", "all"],
)
def test_what_the_fast_path_leaves_to_click(blocked: Scratch, args: tuple[str, ...]) -> None:
    """A block to render, an unknown or invalid slug, another option: click's path answers."""
    _same(blocked, *args, fast=False)


def test_a_configuration_file_is_left_to_click(scratch: Scratch) -> None:
    """With mergegate.toml the fast path steps aside (it knows only the defaults)."""
    assert scratch("submit", "other", "--sha", scratch.shas["other"]).code == 0
    (scratch.bare / "mergegate.toml").write_text("lease_ttl = 600\n")
    _same(scratch, "show", "other", fast=False)


def test_another_schema_version_is_left_to_click(scratch: Scratch) -> None:
    """A store at a schema version the fast path does not know is read through click's path."""
    assert scratch("submit", "other", "--sha", scratch.shas["other"]).code == 0
    with sqlite3.connect(scratch.db) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2026-01-01')")
    conn.close()
    assert not _fast(scratch, "show", "other")


def test_version_without_click() -> None:
    """--version is answered here, with the text click's version option prints."""
    assert fastread.answer(["--version"]) is not None
    done = subprocess.run(
        [sys.executable, "-c", _THROUGH_CLICK, "--version"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    answer = fastread.answer(["--version"])
    assert answer is not None
    assert (done.returncode, done.stdout) == (answer.code, answer.text)


def test_locates_a_work_tree_and_a_bare_repository(scratch: Scratch, tmp_path: Path) -> None:
    """The root and common dir repo.locate finds; outside any repository it steps aside."""
    work = scratch.work.resolve()
    assert [p.resolve() for p in _fastgate.locate(scratch.work)] == [work, work / ".git"]
    bare = scratch.bare.resolve()
    assert [p.resolve() for p in _fastgate.locate(scratch.bare)] == [bare, bare]
    assert fastread.answer(["--repo", str(tmp_path), "list"]) is None


@pytest.mark.parametrize("args", [("show", "add-docs"), ("--version",)], ids=["show", "version"])
def test_a_stdout_that_cannot_be_written_gets_the_one_line_error(
    scratch: Scratch, args: tuple[str, ...]
) -> None:
    """A fast answer written to a full device exits 1 with the boundary's one line, no traceback."""
    assert scratch("submit", "add-docs").code == 0
    argv = list(args) if args == ("--version",) else ["--repo", str(scratch.bare), *args]
    if args != ("--version",):
        assert _fast(scratch, *args)
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "mergegate.cli", *argv],
            cwd=scratch.root,
            env=_env(),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("mergegate: error: unexpected OSError"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
