"""A second ``run`` beside a stopped one says that it stands by for the host's turn."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from .conftest import Scratch, spawn, states, watch

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
