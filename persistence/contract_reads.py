"""The read side of the store contract (:class:`~.contract.StoreContract` runs it).

The Store's reads filter and order as documented, times come back in UTC,
the integrity check sees an inconsistent row, and a conflict the database
detects is a MergegateError.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mergegate.statemachine import (
    BlockedReport,
    ConcurrencyConflict,
    Event,
    Evidence,
    Lease,
    MergegateError,
    Reason,
    State,
    Store,
)

from .contract_steps import (
    LEASE,
    MAIN,
    T0,
    _append,
    _at,
    _blocked,
    _entry,
    _key,
    _move,
    _raises,
    _submit,
)

__all__ = ["ReadsContract"]


class ReadsContract:
    """The reads every store answers."""

    def test_candidates_and_history_filters(self, store: Store) -> None:
        """candidates filters by state in submission order; history honours since."""
        a = _submit(store, _key("aa"), _at(1))
        b = _submit(store, _key("bb"), _at(2))
        _move(store, a, Event.START_APPLY, State.APPLYING, _at(10))
        assert [c.key.slug for c in store.candidates()] == ["aa", "bb"]
        assert store.candidates(State.PENDING) == [b]
        assert [t.event for t in store.history(a.id, since=_at(5))] == [Event.START_APPLY]
        assert [t.event for t in store.history_of("aa")] == [Event.SUBMIT, Event.START_APPLY]
        assert store.history_of("nobody") == []
        assert [(t.candidate_id, t.seq) for t in store.log()] == [(a.id, 1), (a.id, 2), (b.id, 1)]

    def test_history_of_spans_every_candidate_of_a_slug(self, store: Store) -> None:
        """history_of lists the entries of an integrated candidate and its successor."""
        c = _move(store, _submit(store, _key()), Event.START_APPLY, State.APPLYING, _at(1))
        _move(store, c, Event.INTEGRATE, State.INTEGRATED, _at(2))
        again = _submit(store, _key(sha="b" * 40), _at(3))
        assert [(t.candidate_id, t.event) for t in store.history_of("feat")] == [
            (c.id, Event.SUBMIT),
            (c.id, Event.START_APPLY),
            (c.id, Event.INTEGRATE),
            (again.id, Event.SUBMIT),
        ]
        assert store.history_of("feat", since=_at(2.5)) == store.history(again.id)

    def test_blocked_records_filter_and_order(self, store: Store) -> None:
        """Blocked records come newest last block first, filtered by since and reason."""
        _blocked(store, _key("old"), "old-fu", _at(1))
        c = _move(
            store, _submit(store, _key("new"), _at(2)), Event.START_APPLY, State.APPLYING, _at(3)
        )
        report = BlockedReport(Reason.PRECONDITION_FAILED, MAIN, Evidence(diagnostic="no main"))
        with store.transaction() as tx:
            c = _append(tx, c, _entry(c, Event.BLOCK, State.BLOCKED, _at(4)))
            tx.record_block(
                c.key, report, seq=c.seq, at=_at(4), follow_up_slug="new-fu",
                previous_follow_up=None,
            )  # fmt: skip
        assert [r.key.slug for r in store.blocked_records()] == ["new", "old"]
        assert [r.key.slug for r in store.blocked_records(since=_at(2))] == ["new"]
        assert [r.key.slug for r in store.blocked_records(reason=Reason.MERGE_CONFLICT)] == ["old"]

    def test_edge_counts_read_the_log(self, store: Store) -> None:
        """edge_counts counts each (source, event, dest) the log holds."""
        a = _submit(store, _key("aa"))
        _submit(store, _key("bb"))
        _move(store, a, Event.START_APPLY, State.APPLYING, _at(1))
        assert store.edge_counts() == {
            (None, Event.SUBMIT, State.PENDING): 2,
            (State.PENDING, Event.START_APPLY, State.APPLYING): 1,
        }

    def test_times_round_trip_in_utc(self, store: Store) -> None:
        """A time with microseconds comes back equal and in UTC."""
        at = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
        c = _submit(store, _key(), at)
        [entry] = store.history(c.id)
        stored = store.candidate("feat")
        assert stored is not None
        assert (entry.at, stored.submitted_at, stored.updated_at) == (at, at, at)
        assert entry.at.utcoffset() == timedelta(0)

    def test_integrity_problems_see_a_lease_without_its_candidate(self, store: Store) -> None:
        """The integrity check reports a lease held for a candidate that is not applying."""
        c = _submit(store, _key())
        assert store.integrity_problems() == []
        with store.transaction() as tx:
            tx.put_lease(Lease(LEASE, "w1", c.id, T0, _at(30)))
        [problem] = store.integrity_problems()
        assert LEASE in problem

    def test_errors_are_mergegate_errors(self, store: Store) -> None:
        """A conflict the database detects is a MergegateError, not the driver's exception."""
        stale = _submit(store, _key())
        _move(store, stale, Event.START_APPLY, State.APPLYING, _at(1))

        def append_stale() -> None:
            with store.transaction() as tx:
                _append(tx, stale, _entry(stale, Event.START_APPLY, State.APPLYING, _at(2)))

        assert isinstance(_raises(MergegateError, append_stale), ConcurrencyConflict)
