"""The Engine on every store: the same calls, the same outcomes, on SQLite and PostgreSQL.

The store contract (``persistence/contract.py``) checks the Store and
Transaction API directly; these cases check what the Engine builds on it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from mergegate.persistence.contract import ManualClock, conflict_report
from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    CheckResult,
    ConcurrencyConflict,
    DuplicateCandidate,
    Engine,
    Event,
    Evidence,
    FollowUpState,
    IllegalTransition,
    LeaseHeld,
    Reason,
    State,
    Store,
)


def _key(slug: str = "feat", sha: str = "a" * 40, branch: str | None = None) -> CandidateKey:
    return CandidateKey(slug, branch or slug, sha)


def _engine(store: Store, clock: Callable[[], datetime] | None = None) -> Engine:
    return Engine(store, clock=clock or ManualClock())


def _blocked(engine: Engine, key: CandidateKey, report: BlockedReport | None = None) -> None:
    engine.submit(key)
    engine.start_apply(key.slug, owner="w1")
    engine.block(key.slug, report or conflict_report())


def _snapshot(store: Store) -> tuple[object, ...]:
    return (
        store.candidates(),
        list(store.log()),
        store.blocked_records(),
        store.follow_up_jobs(include_done=True),
        store.leases(),
    )


class TestEngineOnEveryStore:
    """The Engine's calls end the same way on every store the ``store`` fixture yields."""

    def test_submit_is_idempotent(self, store: Store) -> None:
        """Submitting the same identity twice returns the same candidate and logs once."""
        engine = _engine(store)
        first = engine.submit(_key())
        again = engine.submit(_key())
        assert again.transition is None
        assert again.candidate == first.candidate
        assert len(store.history(first.candidate.id)) == 1

    def test_slug_held_by_other_identity_is_refused(self, store: Store) -> None:
        """A second identity for an unintegrated slug is refused and writes nothing."""
        engine = _engine(store)
        engine.submit(_key())
        before = _snapshot(store)
        with pytest.raises(DuplicateCandidate) as err:
            engine.submit(_key(sha="b" * 40))
        assert err.value.slug == "feat"
        assert _snapshot(store) == before

    def test_illegal_move_writes_nothing(self, store: Store) -> None:
        """An event the table forbids raises IllegalTransition and leaves the store as it was."""
        engine = _engine(store)
        engine.submit(_key())
        before = _snapshot(store)
        with pytest.raises(IllegalTransition) as err:
            engine.integrate("feat", main_sha="c" * 40)
        assert (err.value.state, err.value.event) == (State.PENDING, Event.INTEGRATE)
        assert _snapshot(store) == before

    def test_stale_expected_seq_is_a_conflict(self, store: Store) -> None:
        """A writer holding an old seq gets ConcurrencyConflict and writes nothing."""
        engine = _engine(store)
        seq = engine.submit(_key()).candidate.seq
        engine.start_apply("feat", owner="w1", expected_seq=seq)
        before = _snapshot(store)
        with pytest.raises(ConcurrencyConflict) as err:
            engine.block("feat", conflict_report(), expected_seq=seq)
        assert (err.value.expected_seq, err.value.actual_seq) == (seq, seq + 1)
        assert _snapshot(store) == before

    def test_block_replay_appends_evidence_only(self, store: Store) -> None:
        """A repeated block keeps the state, the follow-up and the outbox row; evidence grows."""
        engine = _engine(store)
        _blocked(engine, _key())
        first = store.blocked_record(_key())
        replay = engine.block("feat", conflict_report("b", "a"))
        assert replay.state is State.BLOCKED
        assert replay.blocked is not None
        assert first is not None
        assert replay.blocked.follow_up_slug == first.follow_up_slug
        assert replay.blocked.occurrences == 2
        assert [o.number for o in store.occurrences(first.id)] == [1, 2]
        assert store.occurrences(first.id)[1].report.evidence.conflicted_paths == ("a", "b")
        assert len(store.follow_up_jobs()) == 1
        assert store.integrity_problems() == []

    def test_follow_up_slug_collision_takes_suffix(self, store: Store) -> None:
        """Two identities with the same slug and sha7 get distinct, stable follow-up slugs."""
        engine = _engine(store)
        _blocked(engine, _key(sha="abcdef1" + "0" * 33))
        engine.start_remediation("feat")
        engine.resume("feat", new_sha="abcdef1" + "1" * 33, force_reason="test")
        engine.start_apply("feat", owner="w1")
        engine.block("feat", conflict_report())
        records = sorted(store.blocked_records(), key=lambda r: r.id)
        assert [r.follow_up_slug for r in records] == [
            "feat-integration-blocked-abcdef1",
            "feat-integration-blocked-abcdef1-2",
        ]
        assert records[1].previous_follow_up == "feat-integration-blocked-abcdef1"
        assert records[0].status == "resumed"

    def test_finish_follow_up_marks_outbox(self, store: Store) -> None:
        """Finishing a follow-up updates its record and retires its outbox row only on success."""
        engine = _engine(store)
        _blocked(engine, _key())
        slug = store.follow_up_jobs()[0].follow_up_slug
        store.finish_follow_up(slug, FollowUpState.FAILED, "disk full")
        record = store.blocked_record(_key())
        assert record is not None
        assert (record.follow_up_state, record.follow_up_error) == (
            FollowUpState.FAILED,
            "disk full",
        )
        assert len(store.follow_up_jobs()) == 1
        store.finish_follow_up(slug, FollowUpState.CREATED, None)
        assert store.follow_up_jobs() == []
        assert store.follow_up_jobs(include_done=True)[0].attempts == 2

    def test_lease_is_exclusive_and_released(self, store: Store) -> None:
        """One apply holds the lease; a second waits; integrate releases it."""
        engine = _engine(store)
        engine.submit(_key("one"))
        engine.submit(_key("two"))
        engine.start_apply("one", owner="w1")
        before = _snapshot(store)
        with pytest.raises(LeaseHeld) as err:
            engine.start_apply("two", owner="w2")
        assert err.value.owner == "w1"
        assert _snapshot(store) == before
        engine.integrate("one", main_sha="c" * 40)
        assert store.leases() == []
        assert engine.start_apply("two", owner="w2").state is State.APPLYING

    def test_renew_and_recover_lease(self, store: Store) -> None:
        """A renewed lease survives; an expired one is requeued, the third in a row blocked."""
        clock = ManualClock()
        engine = _engine(store, clock)
        engine.submit(_key())
        engine.start_apply("feat", owner="w1", ttl=timedelta(seconds=30))
        clock.advance(seconds=20)
        engine.renew_lease("w1", timedelta(seconds=30))
        clock.advance(seconds=20)
        assert engine.recover("d" * 40) == []
        clock.advance(seconds=20)
        for _ in range(2):
            [requeued] = engine.recover("d" * 40)
            assert requeued.state is State.PENDING
            engine.start_apply("feat", owner="w1", ttl=timedelta(seconds=30))
            clock.advance(seconds=40)
        [outcome] = engine.recover("d" * 40)
        assert outcome.state is State.BLOCKED
        assert outcome.transition is not None
        assert outcome.transition.event is Event.INTERRUPT
        [occurrence] = store.occurrences(outcome.blocked.id if outcome.blocked else -1)
        assert occurrence.report.reason is Reason.APPLY_INTERRUPTED
        assert occurrence.report.evidence.lease_owner == "w1"
        with pytest.raises(LeaseHeld):
            engine.renew_lease("w1")

    def test_queries_filter_and_order(self, store: Store) -> None:
        """next_candidate is FIFO; history and blocked lists honour since and reason."""
        clock = ManualClock()
        engine = _engine(store, clock)
        for slug in ("aa", "bb", "cc"):
            engine.submit(_key(slug))
            clock.advance(minutes=1)
        next_ = store.next_candidate()
        assert next_ is not None
        assert next_.key.slug == "aa"
        _blocked(engine, _key("dd"))
        clock.advance(minutes=1)
        mark = clock.now
        engine.start_apply("aa", owner="w1")
        report = BlockedReport(
            Reason.CHECKS_FAILED, "0" * 40, Evidence(checks=(CheckResult("unit", 1, "boom"),))
        )
        engine.block("aa", report)
        assert [r.key.slug for r in store.blocked_records()] == ["aa", "dd"]
        assert [r.key.slug for r in store.blocked_records(since=mark)] == ["aa"]
        assert [r.key.slug for r in store.blocked_records(reason=Reason.MERGE_CONFLICT)] == ["dd"]
        assert [t.event for t in store.history_of("aa", since=mark)] == [
            Event.START_APPLY,
            Event.BLOCK,
        ]
        counts = store.edge_counts()
        assert counts[(None, Event.SUBMIT, State.PENDING)] == 4
        assert counts[(State.APPLYING, Event.BLOCK, State.BLOCKED)] == 2

    def test_idempotency_key_replays(self, store: Store) -> None:
        """A call repeated with its idempotency key returns the first entry and writes nothing."""
        engine = _engine(store)
        engine.submit(_key())
        first = engine.start_apply("feat", owner="w1", idempotency_key="req-1")
        again = engine.start_apply("feat", owner="w1", idempotency_key="req-1")
        assert again.transition == first.transition
        assert len(store.history(first.candidate.id)) == 2

    def test_batch_is_all_or_nothing(self, store: Store) -> None:
        """A batch that fails half-way writes none of its moves."""
        engine = _engine(store)
        with engine.batch() as batch:
            batch.submit(_key("aa"))
            batch.submit(_key("bb"))
        assert len(batch.outcomes) == 2
        before = _snapshot(store)

        def half_way() -> None:
            with engine.batch() as batch:
                batch.start_apply("aa", owner="w1")
                batch.integrate("bb", main_sha="c" * 40)

        with pytest.raises(IllegalTransition):
            half_way()
        assert _snapshot(store) == before

    def test_verify_and_integrity_after_full_lifecycle(self, store: Store) -> None:
        """A full lifecycle folds back to the stored state and passes the integrity check."""
        engine = _engine(store)
        _blocked(engine, _key())
        engine.start_remediation("feat")
        engine.resume("feat", new_sha="b" * 40)
        engine.start_apply("feat", owner="w1")
        done = engine.integrate("feat", main_sha="c" * 40)
        assert done.candidate.key.sha == "b" * 40
        assert engine.verify() == []
        assert store.integrity_problems() == []
        assert engine.submit(_key(sha="e" * 40)).state is State.PENDING
