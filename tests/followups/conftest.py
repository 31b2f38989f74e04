"""Fixtures for the follow-up tests: fixed records and reports, and a todos folder."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    CheckResult,
    Evidence,
    FollowUpState,
    Reason,
    State,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
MAIN = "fedcba9876543210fedcba9876543210fedcba98"
AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
KEY = CandidateKey("auth-login", "feature/auth-login", SHA)
FOLLOW_UP = "auth-login-integration-blocked-0123456"

MakeRecord = Callable[..., BlockedRecord]
MakeCandidate = Callable[..., Candidate]


@pytest.fixture
def key() -> CandidateKey:
    """The candidate identity the fixed records belong to."""
    return KEY


@pytest.fixture
def follow_up() -> str:
    """The follow-up slug of the fixed records."""
    return FOLLOW_UP


@pytest.fixture
def checks_report() -> BlockedReport:
    """A checks_failed report with one failing and one passing check."""
    return BlockedReport(
        Reason.CHECKS_FAILED,
        MAIN,
        Evidence(
            checks=(
                CheckResult("pytest", 1, "FAILED tests/test_login.py::test_expired\n1 failed"),
                CheckResult("ruff", 0, ""),
            )
        ),
        detail="2 checks ran, 1 failed",
    )


@pytest.fixture
def conflict_report() -> BlockedReport:
    """A merge_conflict report on two paths, given unsorted."""
    return BlockedReport(
        Reason.MERGE_CONFLICT,
        MAIN,
        Evidence(conflicted_paths=("src/b.py", "src/a.py")),
        detail="merge-tree reported conflicts",
    )


def _record(**changes: Any) -> BlockedRecord:
    record = BlockedRecord(
        id=1,
        key=KEY,
        reason=Reason.CHECKS_FAILED,
        main_sha=MAIN,
        follow_up_slug=FOLLOW_UP,
        previous_follow_up=None,
        status="open",
        follow_up_state=FollowUpState.CREATED,
        follow_up_error=None,
        blocked_at=AT,
        last_blocked_at=AT,
        occurrences=1,
    )
    return attrs.evolve(record, **changes)


def _candidate(state: State = State.BLOCKED, key: CandidateKey = KEY) -> Candidate:
    return Candidate(id=1, key=key, state=state, seq=3, submitted_at=AT, updated_at=AT)


@pytest.fixture
def make_record() -> MakeRecord:
    """Builds a checks_failed record of ``key`` with a created follow-up; kwargs change fields."""
    return _record


@pytest.fixture
def make_candidate() -> MakeCandidate:
    """Builds the stored view of a candidate (``key``, blocked, unless told otherwise)."""
    return _candidate


@pytest.fixture
def todos(tmp_path: Path) -> Path:
    """A todos folder path (not created: the code under test creates it)."""
    return tmp_path / "todos"
