"""A run beside a stopped run stands by and says so; a stalled git does not hold up a stop."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from .conftest import Scratch, spawn, stalled_queue, states, watch

# A check that loops while the SLOW variable names an existing file (test_cli_run.py's).
_CONFIG = """lease_ttl = 600
[[checks]]
name = "slow-gate"
argv = 'while [ -n "$SLOW" ] && [ -e "$SLOW" ]; do sleep 0.05; done'
shell = true
"""


def test_a_run_beside_a_stopped_run_says_it_stands_by(scratch: Scratch, tmp_path: Path) -> None:
    """run SIGSTOPped in a check holds the turn: a second run --once says it stands by."""
    (scratch.bare / "mergegate.toml").write_text(_CONFIG, encoding="utf-8")
    assert scratch("submit", "add-docs").code == 0
    assert scratch("submit", "other").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    first = spawn(scratch, "run", env={"SLOW": str(flag)})
    with watch(first) as live:
        live.wait_for("check slow-gate")
        os.kill(first.pid, signal.SIGSTOP)
        try:
            second = spawn(scratch, "run", "--once")
            with watch(second) as waiting:
                said = waiting.wait_for("standing by", timeout=30)
                assert "another integrator on this host has the turn" in said[-1], said
                second.send_signal(signal.SIGINT)
                code, _out, err = waiting.finish(timeout=30)
            assert code == 0, err
        finally:
            os.kill(first.pid, signal.SIGCONT)
        flag.unlink()
        live.wait_for(": integrated")
        first.send_signal(signal.SIGINT)
        live.finish(timeout=60)
    assert states(scratch)["add-docs"] == "integrated"


def test_standing_by_beside_a_long_check_is_said_once(scratch: Scratch, tmp_path: Path) -> None:
    """Beside a run in a long check (its lease renewed), a second run says each line once."""
    # The holder touches the turn after each candidate, so a long check looks idle to the
    # turn after one TTL while its heartbeats keep the lease: the second run comes back to
    # the turn every step, and used to say both lines again each time (every 2 s).
    # A TTL of 4 s: the holder's heartbeat (every TTL/3) keeps its lease with seconds to spare.
    flag = stalled_queue(scratch, tmp_path, _CONFIG.replace("lease_ttl = 600", "lease_ttl = 4"))
    first = spawn(scratch, "run", env={"SLOW": str(flag)})
    with watch(first) as live:
        live.wait_for("check slow-gate")
        # "other" waits behind the lease: the second run keeps coming back to the turn.
        second = spawn(scratch, "run", "--once")
        with watch(second) as waiting:
            waiting.wait_for("going on to the lease", timeout=30)
            time.sleep(5)  # two more rounds of the turn's wait, the lease still held
            flag.unlink()
            code, out, err = waiting.finish(timeout=60)
        assert code == 0, err
        live.wait_for(": integrated")
        first.send_signal(signal.SIGINT)
        live.finish(timeout=60)
    assert out.count("standing by: another integrator") == 1, out
    assert out.count("going on to the lease without the turn") == 1, out
    assert states(scratch)["add-docs"] == "integrated"


def _kept_git(run_pid: int, verb: str) -> int:
    """The pid of ``git ... <verb>`` that run keeps as its child."""
    children = Path(f"/proc/{run_pid}/task/{run_pid}/children").read_text().split()
    for pid in children:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if verb.encode() in argv:
            return int(pid)
    raise AssertionError(f"run {run_pid} keeps no git {verb}: children {children}")


def test_a_stop_cuts_short_an_apply_whose_kept_git_is_stalled(scratch: Scratch) -> None:
    """run's cat-file SIGSTOPped mid-apply: SIGTERM ends run at once; the candidate requeued."""
    assert scratch("submit", "other").code == 0
    run = spawn(scratch, "run")
    with watch(run) as live:
        live.wait_for("other")
        live.wait_for("queue empty")
        catfile = _kept_git(run.pid, "cat-file")
        os.kill(catfile, signal.SIGSTOP)
        try:
            assert scratch("submit", "add-docs").code == 0
            live.wait_for("add-docs")  # applying: its preconditions wait on the stopped git
            run.send_signal(signal.SIGTERM)
            code, out, err = live.finish(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(catfile, signal.SIGCONT)
    assert code == 0, err
    assert "stopped by SIGTERM during its read" in out, out
    assert states(scratch)["add-docs"] == "pending"
    assert not Path(f"/proc/{catfile}").exists() or "Z" in _state(catfile)


def _state(pid: int) -> str:
    """The process state letter of ``pid`` (``Z`` for a zombie)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
