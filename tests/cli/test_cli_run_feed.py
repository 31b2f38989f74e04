"""An idle `mergegate run` wakes on the change feed: a submit starts at once, not next poll."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from .conftest import MakeScratch, Scratch, _env, states, watch

#: PostgreSQL's change feed shows nothing past the cluster's oldest running write
#: transaction (persistence/feed.py), however unrelated, so these run after the
#: parallel phase of CI, alone (tox.ini, marker ``serial``).
pytestmark = pytest.mark.serial

# A poll far longer than the test waits: only the feed's wake-up can start the apply in time.
POLL = "600"
WAKE_BOUND = 60.0


def _spawn(s: Scratch, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(s.bare), *args],
        cwd=s.root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _woken_by_a_submit(s: Scratch, *db: str) -> None:
    proc = _spawn(s, *db, "run", "--poll", POLL)
    with watch(proc) as live:
        live.wait_for("queue empty")
        assert s(*db, "submit", "other").code == 0
        # Polling would sleep 600 s before looking again; the feed wakes it on the commit.
        live.wait_for("integrated", timeout=WAKE_BOUND)
        proc.send_signal(signal.SIGTERM)
        code, _out, err = live.finish(timeout=30)
    assert code == 0, err
    assert states(s, *db)["other"] == "integrated"


def test_an_idle_run_on_sqlite_wakes_on_a_submit(scratch: Scratch) -> None:
    """SQLite: run --poll 600 applies a candidate submitted while it waits, long before 600 s."""
    _woken_by_a_submit(scratch)


@pytest.mark.postgres
def test_an_idle_run_on_postgres_wakes_on_a_submit(make_scratch: MakeScratch, pg_url: str) -> None:
    """PostgreSQL: LISTEN/NOTIFY wakes run --poll 600 on the submit's commit."""
    s = make_scratch("fresh")
    db = ("--db", pg_url)
    assert s(*db, "init").code == 0
    _woken_by_a_submit(s, *db)
