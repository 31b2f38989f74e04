"""`mergegate run --help` says what --poll bounds now that an idle run waits on the change feed."""

from __future__ import annotations

import subprocess
import sys


def test_poll_help_says_it_bounds_a_wait_on_the_change_feed() -> None:
    """--poll is the longest idle wait on the change feed, not how often run looks."""
    done = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "--poll SECONDS" in text
    assert "waits on the change feed" in text
    assert "How often an idle integrator looks" not in text
