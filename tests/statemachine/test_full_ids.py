"""The Engine takes full object ids only: an abbreviation is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    Engine,
    Evidence,
    InvalidInput,
    Reason,
    State,
)
from mergegate.statemachine.testing import strategies as mst

SHA = "c" * 40
MAIN = "d" * 40


def _engine(tmp_path: Path) -> Engine:
    return Engine(SQLiteStore(tmp_path / "db.sqlite3"))


def _entries(engine: Engine) -> int:
    return sum(1 for _ in engine.store.log())


def test_integrate_refuses_an_abbreviated_main_sha(tmp_path: Path) -> None:
    """Engine.integrate with a 7-hex main sha raises InvalidInput and leaves the log as it was."""
    engine = _engine(tmp_path)
    engine.submit(CandidateKey("feat", "feat", SHA))
    engine.start_apply("feat", owner="w")
    before = _entries(engine)
    with pytest.raises(InvalidInput, match="resolve an abbreviation to one first") as info:
        engine.integrate("feat", main_sha=MAIN[:7])
    assert info.value.field == "main sha"
    assert _entries(engine) == before
    assert engine.get("feat").state is State.APPLYING


def test_resume_refuses_an_abbreviated_new_sha(tmp_path: Path) -> None:
    """Engine.resume with a 12-hex new sha raises InvalidInput; the candidate stays remediating."""
    engine = _engine(tmp_path)
    engine.submit(CandidateKey("feat", "feat", SHA))
    engine.start_apply("feat", owner="w")
    report = BlockedReport(Reason.MERGE_CONFLICT, MAIN, Evidence(conflicted_paths=("a.txt",)))
    engine.block("feat", report)
    engine.start_remediation("feat")
    before = _entries(engine)
    with pytest.raises(InvalidInput, match="40 or 64 lowercase hex") as info:
        engine.resume("feat", new_sha="e" * 12, force_reason="test")
    assert info.value.field == "new sha"
    assert _entries(engine) == before
    assert engine.get("feat").key.sha == SHA
    assert engine.get("feat").state is State.REMEDIATING


@given(mst.hostile_shas())
def test_blocked_report_refuses_any_non_full_main_sha(sha: str) -> None:
    """A blocked report cannot name main by an abbreviation or a malformed id."""
    with pytest.raises(InvalidInput):
        BlockedReport(Reason.EXTERNAL, sha, Evidence())
