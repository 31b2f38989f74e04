"""`mergegate run`: the integrator loop, as a real subprocess on real repositories."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..procio import LiveOutput, wait_until
from .conftest import (
    MakeScratch,
    Result,
    Scratch,
    _env,
    git,
    read_until,
    spawn,
    stalled_queue,
    states,
    watch,
)

# A check that sleeps while the SLOW variable names an existing file, so a test
# can stall an apply in its check and release it again.
SLOW_CHECK = """
[[checks]]
name = "slow-gate"
argv = 'while [ -n "$SLOW" ] && [ -e "$SLOW" ]; do sleep 0.05; done'
shell = true
"""


def _show(s: Scratch, slug: str, *db: str) -> dict[str, object]:
    result = s(*db, "--json", "show", slug)
    assert result.code == 0, result.stderr
    doc: dict[str, object] = result.doc["result"]
    return doc


def _applying(s: Scratch, slug: str) -> bool:
    return states(s)[slug] == "applying"


def _merges_of(s: Scratch, sha: str) -> int:
    log = git(s.bare, "log", "--first-parent", "--format=%B", "refs/heads/main")
    return log.count(f"Candidate: {sha}")


def test_run_once_drains_the_queue_and_exits_0(scratch: Scratch) -> None:
    """run --once integrates every queued candidate in order and exits 0 with a summary."""
    for slug in ("add-docs", "other"):
        assert scratch("submit", slug).code == 0
    done = scratch("run", "--once")
    assert done.code == 0, done.stderr
    assert "handled 2: integrated 2, blocked 0" in done.stdout
    for slug in ("add-docs", "other"):
        assert _merges_of(scratch, scratch.shas[slug]) == 1
    assert scratch("verify").code == 0


def test_run_once_exits_3_when_one_blocked(scratch: Scratch) -> None:
    """A conflicting candidate is blocked, the others still integrate, and the exit is 3."""
    for slug in ("add-docs", "new-greeting", "other"):
        assert scratch("submit", slug).code == 0
    done = scratch("--json", "run", "--once")
    assert done.code == 3, done.stderr
    result = done.doc["result"]
    assert (result["handled"], result["integrated"], result["blocked"]) == (3, 2, 1)
    assert done.doc["exit_code"] == 3
    assert states(scratch)["new-greeting"] == "blocked"


def test_run_off_a_terminal_writes_plain_lines(scratch: Scratch) -> None:
    """Off a terminal each event is one plain line: no escape codes, no spinner."""
    (scratch.bare / "mergegate.toml").write_text(SLOW_CHECK)
    assert scratch("submit", "other").code == 0
    done = scratch("run", "--once")
    assert done.code == 0, done.stderr
    sha = scratch.shas["other"][:12]
    # Each progress line starts with its UTC time: dropped here, checked in test_cli_run_people.
    lines = [
        re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", "", ln) for ln in done.stdout.splitlines()
    ]
    assert lines[0] == f"other {sha}: applying"
    assert lines[1] == "other: check slow-gate"
    assert lines[2].startswith(f"other {sha}: integrated main=")
    assert lines[3].startswith("handled 1: integrated 1, blocked 0")
    assert "\x1b" not in done.stdout


def _a_second_shown(text: str) -> bool:
    """Whether the live line has shown the check running for a second or more."""
    return any(float(t) >= 1.0 for t in re.findall(r"(?<![\d.])(\d+\.\d)s", text))


def test_run_shows_live_progress_on_a_terminal(scratch: Scratch, tmp_path: Path) -> None:
    """Under a real pty, the live line names the candidate, the running check and its time."""
    (scratch.bare / "mergegate.toml").write_text(SLOW_CHECK)
    assert scratch("submit", "other").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    env = _env()
    env.update(SLOW=str(flag), TERM="xterm-256color", COLUMNS="120", LINES="30")
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover (the child execs at once)
        os.chdir(scratch.root)
        os.execve(  # noqa: S606 (a fixed argv, as the other subprocesses)
            sys.executable,
            [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare), "run", "--once"],
            env,
        )
    term = LiveOutput(fds={"terminal": fd}, what=f"mergegate run --once on a pty (pid {pid})")
    status = None
    try:
        # rich redraws about every 0.12 s, so the clock the line shows steps past
        # some tenths (0.9s, then 1.1s: a wait for "1.0s" itself was this test's
        # flake); wait for any reading of a second or more.
        term.wait_text(_a_second_shown, "the live line at 1.0s or later", stream="terminal")
        flag.unlink()
        text = term.ended("terminal")
        _, status = os.waitpid(pid, 0)
    finally:
        if status is None:  # a failed wait: the child must not outlive the test
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    assert "check slow-gate" in text
    assert "other" in text
    assert "\x1b[" in text  # drawn by rich, not plain lines
    assert os.waitstatus_to_exitcode(status) == 0
    assert "handled 1: integrated 1" in text


def test_run_killed_mid_apply_is_taken_over_at_once(scratch: Scratch, tmp_path: Path) -> None:
    """SIGKILL in a check, then a new run: requeued at once and integrated, nothing doubled."""
    flag = stalled_queue(scratch, tmp_path, "lease_ttl = 600\n" + SLOW_CHECK)
    first = spawn(scratch, "run", env={"SLOW": str(flag)})
    with watch(first) as live:
        live.wait_for("check slow-gate")
        live.kill()
    assert states(scratch)["add-docs"] == "applying"
    began = time.monotonic()
    second = scratch("--json", "run", "--once")
    took = time.monotonic() - began
    assert took < 30, "the dead integrator's lease was waited out instead of taken over"
    assert second.code == 0, second.stderr
    assert second.doc["result"]["recovered"] == 1
    # The crash was not add-docs' fault: requeued by the recovery, then integrated.
    assert second.doc["result"]["integrated"] == 2
    assert states(scratch)["add-docs"] == "integrated"
    assert _merges_of(scratch, scratch.shas["add-docs"]) == 1
    assert _merges_of(scratch, scratch.shas["other"]) == 1
    assert scratch("verify").code == 0


def test_sigterm_during_a_check_releases_the_candidate(scratch: Scratch, tmp_path: Path) -> None:
    """SIGTERM in a check: exit at once, the candidate requeued (not blocked), verify clean."""
    (scratch.bare / "mergegate.toml").write_text(SLOW_CHECK)
    for slug in ("add-docs", "other"):
        assert scratch("submit", slug).code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    proc = spawn(scratch, "run", env={"SLOW": str(flag)})
    read_until(proc, "check slow-gate")
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, out, err = watch(proc).finish(timeout=30)
    assert time.monotonic() - began < 10
    assert "Traceback" not in err, err
    assert code == 0, err
    assert "stopped by SIGTERM" in out
    assert "released 1" in out
    # Stopped by its operator, not its own fault: requeued, not blocked.
    assert states(scratch)["add-docs"] == "pending"
    assert states(scratch)["other"] == "pending"
    assert _merges_of(scratch, scratch.shas["add-docs"]) == 0
    assert not list((scratch.bare / "mergegate" / "worktrees").glob("*"))
    # The check stopped with the run (a stop landing as it started once orphaned it).
    wait_until(
        lambda: not _processes_with_env(f"SLOW={flag}"),
        lambda: f"the check's processes to end: {_processes_with_env(f'SLOW={flag}')}",
        timeout=10,
    )
    verify = scratch("verify")
    assert verify.code == 0, verify.stdout + verify.stderr


def test_sighup_stops_run_like_sigterm(scratch: Scratch, tmp_path: Path) -> None:
    """SIGHUP+SIGCONT to a stopped run in a check: requeued, said, summary, worktree removed."""
    (scratch.bare / "mergegate.toml").write_text(SLOW_CHECK)
    assert scratch("submit", "add-docs").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    # SIGHUP at its default, as in a terminal: a runner that started this suite under
    # nohup (a CI job, say) passes SIGHUP ignored down to every child, and run then
    # rightly keeps ignoring it (the next test); this one is the terminal's case.
    proc = subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare), "run"],
        cwd=scratch.root,
        env={**_env(), "SLOW": str(flag)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),  # noqa: PLW1509
    )
    read_until(proc, "check slow-gate")
    # What the kernel does to a stopped process group whose parent went away.
    proc.send_signal(signal.SIGSTOP)
    proc.send_signal(signal.SIGHUP)
    proc.send_signal(signal.SIGCONT)
    code, out, err = watch(proc).finish(timeout=30)
    assert "Traceback" not in err, err
    assert code == 0, (out, err)
    assert "stopped by SIGHUP" in out
    assert "handled 0" in out
    assert "released 1" in out
    assert states(scratch)["add-docs"] == "pending"
    assert not list((scratch.bare / "mergegate" / "worktrees").glob("*"))
    assert scratch("verify").code == 0


def test_run_help_says_queue_order_and_what_a_stop_does(scratch: Scratch) -> None:
    """run --help: queue order, not FIFO; a stop requeues, only a third blocks; SIGHUP too."""
    text = " ".join(scratch("run", "--help").stdout.split())
    assert "FIFO" not in text
    assert "in queue order" in text
    assert "SIGINT, SIGTERM or SIGHUP cuts a running check short and requeues" in text
    assert "only a third interrupted apply in a row blocks it as apply_interrupted" in text
    assert "releases it as apply_interrupted" not in text


def test_run_under_nohup_keeps_ignoring_sighup(scratch: Scratch) -> None:
    """A run started with SIGHUP ignored (nohup) stays up on SIGHUP; SIGTERM still stops it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare), "run", "--poll", "30"],
        cwd=scratch.root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),  # noqa: PLW1509
    )
    read_until(proc, "queue empty")
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert proc.poll() is None, watch(proc).report()
    proc.send_signal(signal.SIGTERM)
    code, out, err = watch(proc).finish(timeout=30)
    assert code == 0, (out, err)
    assert "stopped by SIGTERM" in out


def _processes_with_env(entry: str) -> list[int]:
    """Live processes whose environment holds ``entry`` (``NAME=value``)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone meanwhile
            continue
        if entry.encode() in environ:
            found.append(int(proc.name))
    return found


def test_sigint_while_idle_exits_cleanly(scratch: Scratch) -> None:
    """An idle run waiting for candidates stops at once on SIGINT, with its summary and exit 0."""
    proc = spawn(scratch, "run", "--poll", "30")
    read_until(proc, "queue empty")
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code, out, err = watch(proc).finish(timeout=30)
    assert time.monotonic() - began < 5
    assert code == 0, err
    assert "stopped by SIGINT" in out
    assert "handled 0" in out


def test_run_picks_up_a_candidate_submitted_while_it_waits(scratch: Scratch) -> None:
    """A waiting run applies a candidate submitted after it started (polling the store)."""
    proc = spawn(scratch, "run", "--poll", "0.1")
    with watch(proc) as live:
        live.wait_for("queue empty")
        assert scratch("submit", "other").code == 0
        live.wait_for("other")
        live.wait_for("integrated")
        proc.send_signal(signal.SIGTERM)
        code, _out, err = live.finish(timeout=30)
    assert code == 0, err
    assert _merges_of(scratch, scratch.shas["other"]) == 1


def test_recover_takes_over_a_dead_apply_at_once(scratch: Scratch, tmp_path: Path) -> None:
    """`recover` settles the lease of a killed `apply` on this host without waiting for its TTL."""
    (scratch.bare / "mergegate.toml").write_text("lease_ttl = 600\n" + SLOW_CHECK)
    assert scratch("submit", "other").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    proc = spawn(scratch, "apply", env={"SLOW": str(flag)})
    with watch(proc) as live:
        live.until(lambda: _applying(scratch, "other"), "other applying")
        time.sleep(0.3)
        live.kill()
    done = scratch("--json", "recover")
    assert done.code == 0, done.stderr
    recovered = done.doc["result"]["recovered"]
    # The lease has 600 s to run: only its dead holder lets recover settle it now.
    # Requeued: the kill was not the candidate's fault (the third in a row would block it).
    assert [r["candidate"]["state"] for r in recovered] == ["pending"]
    assert _show(scratch, "other")["blocked"] is None


def test_recover_leaves_a_live_apply_alone(scratch: Scratch, tmp_path: Path) -> None:
    """A stalled but living `apply` keeps its lease: `recover` settles nothing."""
    (scratch.bare / "mergegate.toml").write_text("lease_ttl = 600\n" + SLOW_CHECK)
    assert scratch("submit", "other").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    proc = spawn(scratch, "apply", env={"SLOW": str(flag)})
    with watch(proc) as live:
        live.until(lambda: _applying(scratch, "other"), "other applying")
        done = scratch("--json", "recover")
        assert done.code == 0, done.stderr
        assert done.doc["result"]["recovered"] == []
        flag.unlink()
        code, _out, err = live.finish(timeout=30)
    assert code == 0, err
    assert states(scratch)["other"] == "integrated"


def _many(make_scratch: MakeScratch, n: int) -> Scratch:
    s = make_scratch("fresh")  # its store is on PostgreSQL: one store per repository
    for i in range(n):
        s.commit(f"c{i}", "main", f"change {i}", {f"files/f{i}.txt": f"{i}\n"})
    return s


@pytest.mark.slow
def test_two_runs_share_a_postgres_queue_exactly_once(
    make_scratch: MakeScratch, pg_url: str
) -> None:
    """Two `run` processes on one PostgreSQL queue integrate every candidate exactly once."""
    n = 12
    s = _many(make_scratch, n)
    db = ("--db", pg_url)
    assert s(*db, "init").code == 0
    for i in range(n):
        assert s(*db, "submit", f"c{i}").code == 0
    procs = [spawn(s, *db, "--json", "run", "--once") for _ in range(2)]
    docs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        docs.append(json.loads(out)["result"])
    assert sum(d["integrated"] for d in docs) == n
    assert set(states(s, *db).values()) == {"integrated"}
    for i in range(n):
        assert _merges_of(s, s.shas[f"c{i}"]) == 1
    verify = s(*db, "verify")
    assert verify.code == 0, verify.stdout


def test_run_once_on_postgres_exits_3_with_one_blocked(
    make_scratch: MakeScratch, pg_url: str
) -> None:
    """On PostgreSQL too, run --once drains the queue and exits 3 with one blocked."""
    scratch = make_scratch("fresh")  # its store is on PostgreSQL: one store per repository
    db = ("--db", pg_url)
    assert scratch(*db, "init").code == 0
    for slug in ("add-docs", "new-greeting", "other"):
        assert scratch(*db, "submit", slug).code == 0
    done: Result = scratch(*db, "--json", "run", "--once")
    assert done.code == 3, done.stderr
    assert (done.doc["result"]["integrated"], done.doc["result"]["blocked"]) == (2, 1)
    assert states(scratch, *db) == {
        "add-docs": "integrated",
        "new-greeting": "blocked",
        "other": "integrated",
    }


@pytest.mark.parametrize("poll", ["0", "abc"])
def test_run_refuses_a_bad_poll_before_anything_runs(scratch: Scratch, poll: str) -> None:
    """A bad --poll is one usage line (exit 2) and nothing is written."""
    assert scratch("submit", "other").code == 0
    before = scratch.snapshot()
    done = scratch("run", "--poll", poll)
    assert done.code == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert scratch.snapshot() == before


def test_two_runs_on_one_sqlite_queue_integrate_each_once(scratch: Scratch) -> None:
    """Two `run --once` side by side on the default SQLite store: each candidate once, exit 0."""
    for slug in ("add-docs", "other"):
        assert scratch("submit", slug).code == 0
    procs = [spawn(scratch, "--json", "run", "--once") for _ in range(2)]
    handled = 0
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        handled += json.loads(out)["result"]["integrated"]
    assert handled == 2
    for slug in ("add-docs", "other"):
        assert _merges_of(scratch, scratch.shas[slug]) == 1
    assert scratch("verify").code == 0
