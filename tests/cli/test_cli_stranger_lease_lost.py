"""A stranger stalls `mergegate run` (SIGSTOP) mid-check past its lease_ttl while a second
`run` takes its work over, then continues it (SIGCONT): the first run must say "lease lost"
for the candidate it printed as applying, not go on silently to the next one.

The second run holds the lease (on the next candidate) when the first wakes, so the first
one's renewal finds the lease held by someone else, not gone: that is a loss too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ..procio import LiveOutput, wait_until
from .conftest import Scratch, _env

# add-docs: the first check of it waits for GO (the run doing it is stalled meanwhile);
# other: its check says HELD and waits for GO2, so its run holds the lease until then.
_CHECK = """lease_ttl = 3

[[checks]]
name = "slow"
shell = true
argv = '''
if [ "$MERGEGATE_SLUG" = add-docs ] && [ ! -e "$ONCE" ]; then
  touch "$ONCE"; while [ ! -e "$GO" ]; do sleep 0.05; done
fi
if [ "$MERGEGATE_SLUG" = other ]; then
  touch "$HELD"; while [ ! -e "$GO2" ]; do sleep 0.05; done
fi
'''
"""


def _run(scratch: Scratch, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_cli_stalled_run_taken_over_by_another_run_says_lease_lost(
    scratch: Scratch, tmp_path: Path
) -> None:
    """Run A stopped in add-docs's check, run B takes add-docs over; A, continued, says lost."""
    (scratch.bare / "mergegate.toml").write_text(_CHECK)
    assert scratch("submit", "add-docs").code == 0
    assert scratch("submit", "other").code == 0
    files = {name: tmp_path / name.lower() for name in ("ONCE", "GO", "HELD", "GO2")}
    env = {**_env(), **{name: str(path) for name, path in files.items()}}
    with LiveOutput(_run(scratch, env)) as first:
        first.wait_for("add-docs", stream="stdout")
        first.wait_for("check slow", stream="stdout")
        assert first.proc is not None
        os.kill(first.proc.pid, signal.SIGSTOP)
        try:
            with LiveOutput(_run(scratch, env)) as second:
                # The second run recovers add-docs once the lease expired, integrates it
                # (its check passes: ONCE is there), and holds the lease on other.
                wait_until(files["HELD"].exists, "the second run in other's check", alive=[second])
                files["GO"].touch()
                os.kill(first.proc.pid, signal.SIGCONT)
                lost = first.wait_for("lease lost", stream="stdout", timeout=30)
                files["GO2"].touch()
                assert second.proc is not None
                second.proc.send_signal(signal.SIGINT)
                second.finish(timeout=30)
        finally:
            files["GO"].touch()
            files["GO2"].touch()
            os.kill(first.proc.pid, signal.SIGCONT)
        first.proc.send_signal(signal.SIGINT)
        first.finish(timeout=30)
    # "<time> add-docs <sha>: lease lost (...); `mergegate show add-docs` says how ...".
    said = lost[-1].split(" ", 1)[1]
    assert said.startswith("add-docs "), lost
    assert "mergegate show add-docs" in said, lost
    # Said right after the check, before the first run takes anything else.
    assert not any("applying" in line for line in lost[:-1]), lost
    shown = scratch("--json", "show", "add-docs").doc["result"]
    assert shown["candidate"]["state"] == "integrated", shown
    assert scratch("verify").code == 0
