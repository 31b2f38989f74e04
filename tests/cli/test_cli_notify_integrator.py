"""[[notify]] on integrator_down and integrator_back: a killed integrator is announced once,
by whoever settles its lease, and the run that carries on says it is back."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from ..procio import wait_until
from .conftest import Scratch, spawn, states, watch

SCRIPT = """#!/bin/sh
f=$(mktemp "{out}/notice.XXXXXX")
cat > "$f"
"""

# A check that loops while the SLOW variable names an existing file (test_cli_run.py's).
SLOW_CHECK = """
[[checks]]
name = "slow-gate"
argv = 'while [ -n "$SLOW" ] && [ -e "$SLOW" ]; do sleep 0.05; done'
shell = true
"""


def _notifier(s: Scratch, tmp: Path) -> Path:
    """mergegate.toml: a long lease, the slow check, and a [[notify]] on the integrator's
    events and requeues that saves each stdin; the folder it saves to."""
    out = tmp / "seen"
    out.mkdir()
    script = tmp / "notify.sh"
    script.write_text(SCRIPT.format(out=out), encoding="utf-8")
    script.chmod(0o755)
    (s.bare / "mergegate.toml").write_text(
        f'lease_ttl = 600\n{SLOW_CHECK}\n[[notify]]\nargv = ["{script}"]\n'
        'on = ["integrator_down", "integrator_back", "requeued"]\n',
        encoding="utf-8",
    )
    return out


def _docs(out: Path) -> list[dict[str, Any]]:
    """Every notification received, oldest first."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in out.iterdir()]
    return sorted(docs, key=lambda d: d["at"])


def _pid_of(owner: str) -> int:
    """The pid a lease owner (``actor@host:pid:start``) names."""
    return int(owner.rsplit("@", 1)[1].split(":")[1])


def _kill_in_check(s: Scratch, flag: Path) -> int:
    """Start a run, SIGKILL it while its check holds add-docs applying; its pid."""
    first = spawn(s, "run", env={"SLOW": str(flag)})
    with watch(first) as live:
        # Waited for: the progress line of add-docs' check, so the lease is held.
        live.wait_for("check slow-gate")
        live.kill()
    return first.pid


def test_a_killed_integrator_is_announced_down_then_back_by_the_next_run(
    scratch: Scratch, tmp_path: Path
) -> None:
    """kill -9 in a check: the next run sends the requeue, one down and one back, each named."""
    out = _notifier(scratch, tmp_path)
    assert scratch("submit", "add-docs").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    dead = _kill_in_check(scratch, flag)
    flag.unlink()  # the killed run's check, left behind, ends; the next one passes
    r = scratch("--json", "run", "--once")
    assert r.code == 0, r.stderr
    assert states(scratch)["add-docs"] == "integrated"
    docs = _docs(out)
    assert [d["notify"] for d in docs] == ["requeued", "integrator_down", "integrator_back"]
    requeued, down, back = docs
    assert requeued["candidate"]["slug"] == "add-docs"
    assert _pid_of(down["integrator"]["owner"]) == dead
    assert down["integrator"]["why"] == "process_gone"
    assert [(o["candidate"]["slug"], o["candidate"]["state"]) for o in down["settled"]] == [
        ("add-docs", "pending")
    ]
    assert 0 <= down["down_seconds"] < 600
    assert down["integrator"]["owner"] in down["message"]
    assert back["replaces"] == [down["integrator"]["owner"]]
    assert back["integrator"]["owner"] == down["noticed_by"]
    assert _pid_of(back["integrator"]["owner"]) != dead
    assert back["down_since"] == down["integrator"]["last_renewed_at"]
    assert 0 <= back["down_seconds"] < 600
    assert f"{back['down_seconds']} s" in back["message"]


def test_recover_announces_down_but_not_back(scratch: Scratch, tmp_path: Path) -> None:
    """``recover`` of a killed run sends down but no back; a second recover sends nothing."""
    out = _notifier(scratch, tmp_path)
    assert scratch("submit", "add-docs").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    dead = _kill_in_check(scratch, flag)
    flag.unlink()
    assert scratch("recover").code == 0
    assert scratch("recover").code == 0
    docs = _docs(out)
    assert [d["notify"] for d in docs] == ["requeued", "integrator_down"]
    assert _pid_of(docs[1]["integrator"]["owner"]) == dead
    assert docs[1]["noticed_by"] == "tester"


def _waits_for_turn(proc_pid: int, turn: Path) -> bool:
    """Whether the process has the host's turn file open: it reached the stand-by."""
    fds = Path(f"/proc/{proc_pid}/fd")
    try:
        return any(os.readlink(fd) == str(turn) for fd in fds.iterdir())
    except OSError:  # an fd closed while listed
        return False


def test_two_running_integrators_announce_a_dead_one_once(scratch: Scratch, tmp_path: Path) -> None:
    """Two runs standing by when a third dies: one down and one back, from the settling run."""
    out = _notifier(scratch, tmp_path)
    assert scratch("submit", "add-docs").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    first = spawn(scratch, "run", env={"SLOW": str(flag)})
    turn = scratch.bare / "mergegate" / "run.turn"
    with watch(first) as live:
        live.wait_for("check slow-gate")
        peers = [spawn(scratch, "run", "--poll", "0.1") for _ in range(2)]
        lives = [watch(p) for p in peers]
        try:
            for p in peers:
                wait_until(
                    lambda p=p: _waits_for_turn(p.pid, turn),
                    f"run {p.pid} standing by on {turn}",
                    alive=lives,
                )
            live.kill()
            flag.unlink()
            wait_until(
                lambda: states(scratch)["add-docs"] == "integrated",
                "add-docs integrated by one of the standing-by runs",
                alive=lives,
            )
            # Waited for: each peer found the queue empty, so each had the turn (and
            # recovered) after the dead run's lease was settled.
            for one in lives:
                one.wait_for("queue empty")
        finally:
            for p in peers:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            codes = [one.finish(timeout=30)[0] for one in lives]
    assert codes == [0, 0]
    docs = _docs(out)
    assert [d["notify"] for d in docs] == ["requeued", "integrator_down", "integrator_back"]
    _, down, back = docs
    assert _pid_of(down["integrator"]["owner"]) == first.pid
    assert back["integrator"]["owner"] == down["noticed_by"]
    assert _pid_of(back["integrator"]["owner"]) in {p.pid for p in peers}
