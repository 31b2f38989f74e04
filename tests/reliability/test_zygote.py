"""The zygote's forked runs behave as started processes do: killed as a group, crashes reported."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from ..procio import LiveOutput


def test_a_forked_driver_dies_by_sigkill_with_its_group(
    make_world: Any, tmp_path: Path, kit: Any
) -> None:
    """A driver run paused in a transaction leads its own group; killpg ends it with -9."""
    world = make_world(f"sqlite://{tmp_path / 'store.sqlite3'}")
    proc = world.spawn(1, "tx:1")
    # The group exists when the pid is handed out, before the child has run a line.
    assert os.getpgid(proc.pid) == proc.pid
    with LiveOutput(proc, what="forked driver") as live:
        live.wait_for("PAUSE tx:1", timeout=60)
        assert proc.poll() is None
        kit.kill_group(proc)
        code, _out, _err = live.finish(timeout=60)
    assert code == -signal.SIGKILL


def test_a_crashing_run_exits_1_with_its_traceback(kit: Any) -> None:
    """A run whose script raises exits 1 and its traceback reaches its own stderr."""
    proc = kit.zygote().spawn("workers.py", ["no-such-command"], dict(os.environ))
    with LiveOutput(proc, what="forked worker") as live:
        code, _out, err = live.finish(timeout=60)
    assert code == 1
    assert "KeyError: 'no-such-command'" in err
