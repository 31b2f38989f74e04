"""The resolved time: recorded when a resume finds the follow-up resolved, on every store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    CandidateKey,
    Engine,
    Evidence,
    Reason,
    Store,
)

MAIN = "f" * 40
KEY = CandidateKey("fix-me", "fix-me", "a" * 40)
REPORT = BlockedReport(Reason.PRECONDITION_FAILED, MAIN, Evidence(diagnostic="dirty"))


@attrs.define
class Switch:
    """A resolver an operator flips: resolved or not."""

    resolved: bool = False

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """None once flipped."""
        return None if self.resolved else "not yet"


class Clock:
    """A clock that moves one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def blocked(engine: Engine) -> None:
    """Submit KEY, start it and block it."""
    engine.submit(KEY)
    started = engine.start_apply(KEY.slug, owner="w")
    engine.block(KEY.slug, REPORT, expected_seq=started.candidate.seq)


def test_a_resolved_resume_records_when(store: Store) -> None:
    """resolved_at is the resume's own time when the resolver passed; None before it."""
    switch, clock = Switch(), Clock()
    engine = Engine(store, resolver=switch, clock=clock)
    blocked(engine)
    engine.start_remediation(KEY.slug)
    record = store.blocked_record(KEY)
    assert record is not None
    assert record.resolved_at is None
    switch.resolved = True
    resumed = engine.resume(KEY.slug)
    assert resumed.transition is not None
    record = store.blocked_record(KEY)
    assert record is not None
    assert record.resolved_at is not None
    assert record.resolved_at == resumed.transition.at


def test_a_forced_resume_records_none_and_a_new_block_clears_it(store: Store) -> None:
    """A forced resume resolved nothing; a later block of the same sha reopens it."""
    switch = Switch()
    engine = Engine(store, resolver=switch)
    blocked(engine)
    engine.start_remediation(KEY.slug)
    engine.resume(KEY.slug, force_reason="the operator says so")
    record = store.blocked_record(KEY)
    assert record is not None
    assert record.resolved_at is None
    started = engine.start_apply(KEY.slug, owner="w")
    engine.block(KEY.slug, REPORT, expected_seq=started.candidate.seq)
    engine.start_remediation(KEY.slug)
    switch.resolved = True
    engine.resume(KEY.slug)
    again = store.blocked_record(KEY)
    assert again is not None
    assert again.resolved_at is not None
    started = engine.start_apply(KEY.slug, owner="w")
    engine.block(KEY.slug, REPORT, expected_seq=started.candidate.seq)
    reopened = store.blocked_record(KEY)
    assert reopened is not None
    assert reopened.resolved_at is None
    assert reopened.occurrences == 3
