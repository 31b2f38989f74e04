"""A running notification keeps its integrator's lease alive (``run_notify``'s keepalive)."""

from __future__ import annotations

from pathlib import Path

from mergegate.cli.config import NotifyConfig
from mergegate.cli.notify import run_notify
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine


def test_a_slow_notification_calls_its_keepalive_while_it_runs(tmp_path: Path) -> None:
    """A notify command of 0.5 s with a 0.1 s beat calls the keepalive several times."""
    store = SQLiteStore(tmp_path / "store.sqlite3")
    try:
        outcome = Engine(store).submit(CandidateKey("feat", "feat", "a" * 40))
        beats: list[int] = []
        spec = NotifyConfig(("/bin/sh", "-c", "cat >/dev/null; sleep 0.5"), timeout=5)
        problem = run_notify(spec, outcome, tmp_path, lambda: beats.append(1), every=0.1)
    finally:
        store.close()
    assert problem is None
    assert len(beats) >= 3, beats


def test_a_notification_past_its_timeout_is_killed_with_beats_on_the_way(tmp_path: Path) -> None:
    """The timeout still holds with a keepalive: killed after it, having beaten meanwhile."""
    store = SQLiteStore(tmp_path / "store.sqlite3")
    try:
        outcome = Engine(store).submit(CandidateKey("feat", "feat", "a" * 40))
        beats: list[int] = []
        spec = NotifyConfig(("sleep", "30"), timeout=0.5)
        problem = run_notify(spec, outcome, tmp_path, lambda: beats.append(1), every=0.1)
    finally:
        store.close()
    assert problem == "killed after 0.5s"
    assert beats
