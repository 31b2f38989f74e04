"""The logfmt transition lines: grep-friendly, one per event, impossible to forge."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import pytest
from hypothesis import given

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    Engine,
    Evidence,
    Reason,
)
from mergegate.statemachine._logfmt import format_logfmt
from mergegate.statemachine.testing import strategies as mst


@given(mst.texts(100))
def test_values_never_break_the_line(text: str) -> None:
    """Any text value renders on one line and cannot add a field of its own."""
    line = format_logfmt({"event": "block", "detail": text})
    assert "\n" not in line
    assert "\r" not in line
    assert line.startswith("event=block detail=")
    assert shlex.split(line)[1].startswith("detail=")


def test_blocked_line_carries_reason_follow_up_and_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A block logs event=integration_blocked with reason, follow-up slug and resume command."""
    engine = Engine(SQLiteStore(tmp_path / "db.sqlite3"))
    engine.submit(CandidateKey("feat", "feat", "a" * 40))
    engine.start_apply("feat", owner="w")
    report = BlockedReport(
        Reason.MERGE_CONFLICT,
        "b" * 40,
        Evidence(conflicted_paths=("x",)),
        detail="line one\nevent=integrate slug=evil",
    )
    with caplog.at_level(logging.INFO, logger="mergegate.transitions"):
        engine.block("feat", report)
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("event=integration_blocked transition=block slug=feat branch=feat ")
    assert "reason=merge_conflict" in line
    assert "follow_up_slug=feat-integration-blocked-aaaaaaa" in line
    assert "\n" not in line
    assert "slug=evil" not in line
