"""A stranger's run of docs/operator-procedure.md section 0: the server stalls (SIGSTOP)
longer than ``push_timeout`` while a candidate's checks run, then comes back. Nothing was
pushed, so `run` gives the candidate back to the queue, waits for the server, and integrates
it once the server answers: no innocent block, no candidate left applying.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from ..gitserver import GitServer, Team, make_team
from ..procio import LiveOutput, wait_until


def _stalled_team(git_server: GitServer, tmp_path: Path) -> tuple[Team, Path, Path]:
    """A team whose one queued candidate's check waits for ``go`` (and says it ``started``)."""
    started, go = tmp_path / "check-started", tmp_path / "check-go"
    script = f"touch {started}; while [ ! -e {go} ]; do sleep 0.05; done"
    config = (
        "push_timeout = 2\n"
        f'\n[[checks]]\nname = "wait"\nargv = ["sh", "-c", {json.dumps(script)}]\ntimeout = 60\n'
    )
    team = make_team(git_server, tmp_path, config)
    team.push("stalled", {"stalled.txt": "s\n"})
    assert team.mg("submit", "stalled").returncode == 0
    return team, started, go


def _spawn_run(team: Team, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "run", *args],
        cwd=team.integ,
        env=team.mg_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _no_innocent_block(team: Team) -> None:
    history = team.mg("--json", "history", "stalled")
    events = [t["event"] for t in json.loads(history.stdout)["result"]["transitions"]]
    assert "block" not in events, events
    assert "interrupt" not in events, events
    assert team.mg("verify").returncode == 0


def test_cli_stranger_server_stalled_past_push_timeout_then_run_again_integrates(
    git_server: GitServer, tmp_path: Path
) -> None:
    """run --once: one line, the candidate requeued (nothing was pushed); run again integrates."""
    team, started, go = _stalled_team(git_server, tmp_path)
    with LiveOutput(_spawn_run(team, "--once")) as live:
        wait_until(started.exists, f"the check to start ({started})", alive=[live])
        with team.server.stalled():
            go.touch()
            code, out, err = live.finish(timeout=60)
    assert code == 1, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "remote origin: cannot read its refs, so nothing of" in lines[0], err
    assert team.state("stalled") == "pending"
    again = team.mg("run", "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert team.state("stalled") == "integrated"
    _no_innocent_block(team)


def test_cli_stranger_server_stalled_run_waits_it_out(
    git_server: GitServer, tmp_path: Path
) -> None:
    """run (the daemon): requeues the candidate, waits for the server, then integrates it."""
    team, started, go = _stalled_team(git_server, tmp_path)
    with LiveOutput(_spawn_run(team, "--poll", "0.2")) as live:
        wait_until(started.exists, f"the check to start ({started})", alive=[live])
        with team.server.stalled():
            go.touch()
            live.wait_for("nothing of", timeout=60)
            wait_until(
                lambda: team.state("stalled") == "pending",
                lambda: f"stalled to be requeued; it is {team.state('stalled')}",
                alive=[live],
            )
        wait_until(
            lambda: team.state("stalled") == "integrated",
            lambda: f"stalled to integrate once the server is back; it is {team.state('stalled')}",
            timeout=60,
            alive=[live],
        )
        live.proc.send_signal(signal.SIGTERM)
        code, out, err = live.finish(timeout=60)
    assert code == 0, (out, err)
    _no_innocent_block(team)
