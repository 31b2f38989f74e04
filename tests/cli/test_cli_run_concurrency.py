"""`mergegate run --concurrency N`: speculative chains through the CLI, as real subprocesses."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..procio import LiveOutput
from .conftest import MakeScratch, Scratch, _env, git, stalled_queue, states, watch

# Fails when the merged tree holds the marker file FAIL; sleeps a little first so
# the chain's links really are tested side by side.
MARKER_CHECK = """
[[checks]]
name = "marker"
argv = 'sleep 0.3; test ! -e FAIL'
shell = true
"""

# Stalls while the SLOW variable names an existing file.
SLOW_CHECK = """
[[checks]]
name = "slow-gate"
argv = 'while [ -n "$SLOW" ] && [ -e "$SLOW" ]; do sleep 0.05; done'
shell = true
"""

CULPRIT = "c2"


def _queue_of_five(make_scratch: MakeScratch, *db: str) -> Scratch:
    """Five candidates c0..c4 on separate files, queued in order; c2 adds the FAIL marker."""
    # With another store, a repository that never had one: one store per repository.
    s = make_scratch("fresh" if db else "ready")
    (s.bare / "mergegate.toml").write_text(MARKER_CHECK)
    if db:
        assert s(*db, "init").code == 0
    for i in range(5):
        files = {f"files/f{i}.txt": f"{i}\n"}
        if f"c{i}" == CULPRIT:
            files["FAIL"] = "the check fails on any tree holding this file\n"
        s.commit(f"c{i}", "main", f"change {i}", files)
        assert s(*db, "submit", f"c{i}").code == 0
    return s


def _first_parent_candidates(s: Scratch) -> list[str]:
    """The candidate shas main took, oldest first."""
    log = git(s.bare, "log", "--reverse", "--first-parent", "--format=%B%x00", "refs/heads/main")
    return [
        line.removeprefix("Candidate: ")
        for line in log.splitlines()
        if line.startswith("Candidate: ")
    ]


def _requeues(s: Scratch, slug: str, *db: str) -> list[str]:
    """The reasons of ``slug``'s requeue entries, from ``history --json``."""
    entries = s(*db, "--json", "history", slug).doc["result"]["transitions"]
    return [e["reason"] or "" for e in entries if e["event"] == "requeue"]


def _check_chain_result(s: Scratch, out: str, *db: str) -> None:
    assert states(s, *db) == {
        "c0": "integrated",
        "c1": "integrated",
        "c2": "blocked",
        "c3": "integrated",
        "c4": "integrated",
    }
    order = [s.shas[f"c{i}"] for i in (0, 1, 3, 4)]
    assert _first_parent_candidates(s) == order
    # c3 and c4 were built on c2's merge while its check ran: both thrown away, logged.
    for slug in ("c3", "c4"):
        reasons = _requeues(s, slug, *db)
        assert reasons, f"{slug} has no requeue entry"
        assert all(f"base invalidated by {CULPRIT}" in r for r in reasons), reasons
    assert _requeues(s, "c0", *db) == []
    verify = s(*db, "verify")
    assert verify.code == 0, verify.stdout + verify.stderr


def test_run_concurrency_3_blocks_exactly_the_culprit(make_scratch: MakeScratch) -> None:
    """--once --concurrency 3, five queued, one failing: exit 3, c2 alone blocked, rest in order."""
    s = _queue_of_five(make_scratch)
    done = s("run", "--once", "--concurrency", "3")
    assert done.code == 3, done.stderr
    _check_chain_result(s, done.stdout)
    # Off a terminal, one plain line per move of each link, requeues with their reason.
    # Without the UTC time each progress line starts with.
    lines = [line.partition("Z ")[2] or line for line in done.stdout.splitlines()]
    assert sum(": applying" in line for line in lines) == 7
    assert any(line.startswith("c3 ") and "requeued (rebuilt:" in line for line in lines)
    assert any(line.startswith("c2 ") and "blocked checks_failed" in line for line in lines)
    assert "handled 5: integrated 4, blocked 1" in done.stdout
    assert not list((s.bare / "mergegate" / "worktrees").glob("*"))


def test_run_concurrency_json_counts_as_the_serial_loop(make_scratch: MakeScratch) -> None:
    """With --json the summary counts settled candidates only: requeues are not 'handled'."""
    s = _queue_of_five(make_scratch)
    done = s("--json", "run", "--once", "--concurrency", "4")
    assert done.code == 3, done.stderr
    result = done.doc["result"]
    assert (result["handled"], result["integrated"], result["blocked"]) == (5, 4, 1)
    assert result["released"] == 0
    assert "requeued" in done.stderr


def test_run_concurrency_3_on_postgres(make_scratch: MakeScratch, pg_url: str) -> None:
    """On PostgreSQL too: exit 3, exactly the culprit blocked, the rest in order, verify clean."""
    db = ("--db", pg_url)
    s = _queue_of_five(make_scratch, *db)
    done = s(*db, "run", "--once", "--concurrency", "3")
    assert done.code == 3, done.stderr
    _check_chain_result(s, done.stdout, *db)


@pytest.mark.parametrize("n", ["0", "33", "-1", "two"])
def test_run_refuses_a_concurrency_out_of_bounds(scratch: Scratch, n: str) -> None:
    """--concurrency outside 1..32 is one usage line (exit 2) and nothing is written."""
    assert scratch("submit", "other").code == 0
    before = scratch.snapshot()
    done = scratch("run", "--once", "--concurrency", n)
    assert done.code == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--concurrency" in done.stderr
    assert scratch.snapshot() == before


def _spawn(s: Scratch, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    full = _env()
    full.update(env)
    return subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(s.bare), *args],
        cwd=s.root,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_requeues_every_link_of_the_chain(
    scratch: Scratch, tmp_path: Path, sig: signal.Signals
) -> None:
    """A stop while three links' checks stall: exit at once, all three requeued, verify clean."""
    (scratch.bare / "mergegate.toml").write_text(SLOW_CHECK)
    slugs = ("add-docs", "other", "new-greeting")
    for slug in slugs:
        assert scratch("submit", slug).code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    proc = _spawn(scratch, "--json", "run", "--concurrency", "3", env={"SLOW": str(flag)})
    main_before = scratch.main()
    # With --json the progress lines go to stderr: wait there for the three links.
    with watch(proc) as live:
        live.wait_for(": applying", count=3, stream="stderr")
        time.sleep(0.3)  # the checks are running now
        began = time.monotonic()
        proc.send_signal(sig)
        code, out, err = live.finish(timeout=30)
    assert time.monotonic() - began < 5
    assert "Traceback" not in err, err
    assert code == 0, err
    result = json.loads(out)["result"]
    assert (result["handled"], result["released"]) == (0, 3)
    assert f"stopped by {sig.name}" in err
    # Three candidates are queued again: the stop must not call the queue empty.
    assert "queue empty" not in err, err
    assert set(states(scratch).values()) == {"pending"}
    assert scratch.main() == main_before
    for slug in slugs:
        assert any("integrator was stopped" in r for r in _requeues(scratch, slug))
    assert not list((scratch.bare / "mergegate" / "worktrees").glob("*"))
    verify = scratch("verify")
    assert verify.code == 0, verify.stdout + verify.stderr
    # Nothing is left applying: the next run takes the queue at once.
    flag.unlink()
    again = scratch("run", "--once", "--concurrency", "3")
    assert again.code == 3, again.stderr  # new-greeting conflicts with add-docs
    assert states(scratch)["other"] == "integrated"


def test_show_of_a_chain_link_names_the_chain_lease(scratch: Scratch, tmp_path: Path) -> None:
    """`show` of a link in flight names the chain's live lease, not "no lease covers it"."""
    flag = stalled_queue(scratch, tmp_path, SLOW_CHECK)
    proc = _spawn(scratch, "--json", "run", "--once", "--concurrency", "2", env={"SLOW": str(flag)})
    with watch(proc) as live:
        live.wait_for(": applying", count=2, stream="stderr")
        shown = {slug: scratch("show", slug) for slug in ("add-docs", "other")}
        flag.unlink()
        code, _, err = live.finish(timeout=30)
    assert code == 0, err
    for slug, result in shown.items():
        assert result.code == 0, result.stderr
        line = next(x for x in result.stdout.splitlines() if x.startswith("integrator:"))
        assert "no lease covers it" not in line, (slug, result.stdout)
        assert ", lease until " in line, (slug, result.stdout)


def test_run_concurrency_on_a_terminal_names_the_links(scratch: Scratch, tmp_path: Path) -> None:
    """Under a real pty, the live line names every candidate being tested at once."""
    flag = stalled_queue(scratch, tmp_path, SLOW_CHECK)
    env = _env()
    env.update(SLOW=str(flag), TERM="xterm-256color", COLUMNS="120", LINES="30")
    argv = [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare)]
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover (the child execs at once)
        os.chdir(scratch.root)
        os.execve(  # noqa: S606 (a fixed argv, as the other subprocesses)
            sys.executable, [*argv, "run", "--once", "--concurrency", "2"], env
        )
    term = LiveOutput(fds={"terminal": fd}, what=f"mergegate run --concurrency 2 on a pty ({pid})")
    status = None
    try:
        term.wait_text(
            lambda t: "add-docs, other" in t and "testing 2" in t,
            "the live line naming add-docs, other and testing 2",
            stream="terminal",
        )
        flag.unlink()
        term.ended("terminal")
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:  # a failed wait: the child must not outlive the test
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, term.report()
    assert states(scratch) == {"add-docs": "integrated", "other": "integrated"}
