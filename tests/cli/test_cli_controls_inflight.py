"""Queue controls that reach the work in flight, as an operator meets them: `pause --requeue`
and `promote` while a real `mergegate run` (serial, or `--concurrency 2`) is in a check that
stalls on a file; what is given back is requeued at its place, and run stays up."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ..procio import wait_until
from .conftest import MakeScratch, Scratch, git, spawn, states, watch

ANA = ("--actor", "ana")

# Waits while $STALL names a file, looking every 50 ms: released by removing it.
POLL_CHECK = """
[[checks]]
name = "poll"
argv = 'while [ -e "$STALL" ]; do sleep 0.05; done'
shell = true
"""


def _history(s: Scratch, slug: str, *db: str) -> list[dict[str, object]]:
    done = s(*db, "--json", "history", slug)
    assert done.code == 0, done.stderr
    entries: list[dict[str, object]] = done.doc["result"]["transitions"]
    return entries


def _requeues(s: Scratch, slug: str, *db: str) -> list[str]:
    """The reasons of ``slug``'s logged requeues, oldest first."""
    return [str(e["reason"]) for e in _history(s, slug, *db) if e["event"] == "requeue"]


def _integration_order(s: Scratch) -> list[str]:
    """The slugs main integrated, oldest first, from its merge subjects."""
    log = git(s.bare, "log", "--reverse", "--first-parent", "--format=%s", "main")
    return re.findall(r"^mergegate: integrate (\S+)", log, re.MULTILINE)


def _stalling(s: Scratch, tmp_path: Path, *slugs: str, db: tuple[str, ...] = ()) -> Path:
    """The stalling check configured, ``slugs`` submitted in order; the file that stalls it."""
    (s.bare / "mergegate.toml").write_text(POLL_CHECK)
    for slug in slugs:
        assert s(*db, "submit", slug).code == 0
    stall = tmp_path / "stall"
    stall.write_text("")
    return stall


def _hotfix(s: Scratch) -> None:
    """A branch ``hotfix`` on a file of its own (it conflicts with no other candidate)."""
    s.commit("hotfix", "main", "Fix the outage", {"hotfix.txt": "fixed\n"})


def _stop(run: subprocess.Popen[str]) -> str:
    """SIGTERM the run (it must still be up) and return its whole output; it exits 0."""
    assert run.poll() is None, watch(run).report()
    run.terminate()
    code, out, err = watch(run).finish(30)
    assert code == 0, (out, err)
    return out


def test_pause_requeue_gives_back_a_serial_check_and_run_stays_up(
    scratch: Scratch, tmp_path: Path
) -> None:
    """pause --requeue during a serial check: logged requeue naming it, no todo, run waits."""
    stall = _stalling(scratch, tmp_path, "add-docs", "other")
    run = spawn(scratch, "run", env={"STALL": str(stall)})
    live = watch(run)
    live.wait_for("add-docs: check poll")
    paused = scratch(*ANA, "pause", "--requeue", "--why", "freeze")
    assert paused.code == 0, paused.stderr
    live.wait_for("queue paused by ana")
    assert states(scratch) == {"add-docs": "pending", "other": "pending"}
    assert _requeues(scratch, "add-docs") == [
        "requeued: queue paused with --requeue by ana: freeze"
    ]
    assert not list(scratch.todos.rglob("*.md")), list(scratch.todos.rglob("*"))
    assert run.poll() is None, live.report()
    stall.unlink()
    assert scratch("unpause").code == 0
    live.wait_for("queue unpaused: taking the queue again")  # said before it applies
    live.wait_for("integrated", count=2)
    out = _stop(run)
    assert _integration_order(scratch) == ["add-docs", "other"]
    # The progress line says "requeued" once, then the stored reason after its own word.
    assert ": requeued (queue paused with --requeue by ana: freeze)" in out, out
    assert "requeued (requeued" not in out


def test_pause_requeue_gives_back_every_link_of_a_chain(scratch: Scratch, tmp_path: Path) -> None:
    """pause --requeue with two links in their checks: both requeued, order kept after unpause."""
    stall = _stalling(scratch, tmp_path, "add-docs", "other")
    run = spawn(scratch, "run", "--concurrency", "2", env={"STALL": str(stall)})
    live = watch(run)
    live.wait_for("applying", count=2)
    assert scratch(*ANA, "pause", "--requeue", "--why", "freeze").code == 0
    live.wait_for("queue paused by ana")
    assert states(scratch) == {"add-docs": "pending", "other": "pending"}
    for slug in ("add-docs", "other"):
        assert _requeues(scratch, slug) == ["requeued: queue paused with --requeue by ana: freeze"]
    assert not list(scratch.todos.rglob("*.md"))
    assert run.poll() is None, live.report()
    stall.unlink()
    assert scratch("unpause").code == 0
    live.wait_for("integrated", count=2)
    _stop(run)
    assert _integration_order(scratch) == ["add-docs", "other"]


def test_plain_pause_lets_the_check_in_flight_finish(scratch: Scratch, tmp_path: Path) -> None:
    """A pause without --requeue asks nothing back: the check in flight integrates, no requeue."""
    stall = _stalling(scratch, tmp_path, "add-docs", "other")
    run = spawn(scratch, "run", env={"STALL": str(stall)})
    live = watch(run)
    live.wait_for("add-docs: check poll")
    assert scratch(*ANA, "pause", "--why", "freeze").code == 0
    stall.unlink()
    live.wait_for("add-docs")
    live.wait_for("queue paused by ana")
    assert states(scratch) == {"add-docs": "integrated", "other": "pending"}
    assert _requeues(scratch, "add-docs") == []
    _stop(run)


def test_promote_rebuilds_a_chain_in_flight_with_the_promoted_first(
    scratch: Scratch, tmp_path: Path
) -> None:
    """promote during a chain: its links are requeued naming it, and hotfix lands first."""
    _hotfix(scratch)
    stall = _stalling(scratch, tmp_path, "add-docs", "other", "hotfix")
    run = spawn(scratch, "run", "--concurrency", "2", env={"STALL": str(stall)})
    live = watch(run)
    live.wait_for("applying", count=2)
    promoted = scratch(*ANA, "promote", "hotfix", "--why", "outage")
    assert promoted.code == 0, promoted.stderr
    live.wait_for("hotfix")
    why = "requeued: rebuilt behind hotfix, promoted by ana: outage"
    for slug in ("add-docs", "other"):
        assert _requeues(scratch, slug) == [why], slug
    stall.unlink()
    live.wait_for("integrated", count=3)
    _stop(run)
    assert _integration_order(scratch) == ["hotfix", "add-docs", "other"]
    assert _requeues(scratch, "hotfix") == []
    assert not list(scratch.todos.rglob("*.md"))


def test_priority_submit_cuts_a_serial_check_short(scratch: Scratch, tmp_path: Path) -> None:
    """At --concurrency 1 a promote gives the candidate in its check back; hotfix goes first."""
    _hotfix(scratch)
    stall = _stalling(scratch, tmp_path, "add-docs", "other")
    run = spawn(scratch, "run", env={"STALL": str(stall)})
    live = watch(run)
    live.wait_for("add-docs: check poll")
    done = scratch(*ANA, "submit", "hotfix", "--priority", "--why", "outage")
    assert done.code == 0, done.stderr
    live.wait_for("hotfix: check poll")
    assert _requeues(scratch, "add-docs") == [
        "requeued: rebuilt behind hotfix, promoted by ana: outage"
    ]
    stall.unlink()
    live.wait_for("integrated", count=3)
    _stop(run)
    assert _integration_order(scratch) == ["hotfix", "add-docs", "other"]


@pytest.mark.postgres
@pytest.mark.slow
def test_pause_requeue_reaches_every_integrator_on_postgres(
    make_scratch: MakeScratch, pg_url: str, tmp_path: Path
) -> None:
    """Two runs on one PostgreSQL store: both hear pause --requeue, the check is given back."""
    s = make_scratch("fresh")
    db = ("--db", pg_url)
    assert s(*db, "init").code == 0
    stall = _stalling(s, tmp_path, "add-docs", "other", db=db)
    runs = [spawn(s, *db, "run", env={"STALL": str(stall)}) for _ in range(2)]
    try:
        holder = _first_to_check(runs)
        assert s(*db, *ANA, "pause", "--requeue", "--why", "freeze").code == 0
        watch(holder).wait_for("requeued (queue paused with --requeue by ana")
        for r in runs:  # the holder after its give-back, the other as it stands by
            watch(r).wait_for("queue paused by ana")
        assert states(s, *db) == {"add-docs": "pending", "other": "pending"}
        assert _requeues(s, "add-docs", *db) == [
            "requeued: queue paused with --requeue by ana: freeze"
        ]
        assert all(r.poll() is None for r in runs), [watch(r).report() for r in runs]
        stall.unlink()
        assert s(*db, "unpause").code == 0
        wait_until(
            lambda: sum(watch(r).text().count(": integrated") for r in runs) >= 2,
            "both candidates integrated by either run",
            alive=[watch(r) for r in runs],
        )
    finally:
        outs = [_stop(r) if r.poll() is None else watch(r).report() for r in runs]
    assert _integration_order(s) == ["add-docs", "other"], outs


def _first_to_check(runs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """The run that reached add-docs' check (the other stands by for its turn)."""
    line = "add-docs: check poll"
    wait_until(
        lambda: any(line in watch(r).text() for r in runs),
        "a run in add-docs' check",
        alive=[watch(r) for r in runs],
    )
    return next(r for r in runs if line in watch(r).text())
