"""Engine.verify: the fold of the log against the stored state, on a real SQLite file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """An engine with one candidate that has been submitted and started."""
    engine = Engine(SQLiteStore(tmp_path / "db.sqlite3"))
    engine.submit(CandidateKey("feat", "feat", "a" * 40))
    engine.start_apply("feat", owner="w")
    return engine


def _tamper(tmp_path: Path, sql: str) -> None:
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        conn.execute(sql)


def test_clean_store_verifies(engine: Engine) -> None:
    """A store written only by the Engine folds back to its stored state."""
    assert engine.verify() == []


def test_stored_state_drift_is_named(engine: Engine, tmp_path: Path) -> None:
    """A candidate whose stored state disagrees with its log is reported."""
    _tamper(tmp_path, "UPDATE candidates SET state = 'retry'")
    [problem] = engine.verify()
    assert "stored state retry != folded applying" in str(problem)


def test_illegal_logged_move_is_named(engine: Engine, tmp_path: Path) -> None:
    """A log entry the table does not allow is reported with its seq."""
    _tamper(tmp_path, "UPDATE transitions SET event = 'integrate' WHERE seq = 2")
    problems = [str(p) for p in engine.verify()]
    assert any("seq 2" in p and "integrate" in p for p in problems)


def test_gap_in_log_is_named(engine: Engine, tmp_path: Path) -> None:
    """A missing log entry shows up as a gap."""
    _tamper(tmp_path, "DELETE FROM transitions WHERE seq = 1")
    problems = [str(p) for p in engine.verify()]
    assert any("gap: expected seq 1" in p for p in problems)
    assert engine.store.integrity_problems() != []
