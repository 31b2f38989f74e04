"""The moves' part of the store contract (:class:`~.contract.StoreContract` runs it).

A transaction commits on normal exit and rolls every write back on an error;
``insert_candidate`` and ``append`` write a move, and a stale one is a
conflict that writes nothing; ``candidate``, ``find_candidate`` and
``claim_next`` read the queue in stored order; an idempotency key finds the
entry it was logged with.
"""

from __future__ import annotations

from mergegate.statemachine import ConcurrencyConflict, Event, Lease, State, Store, Transition

from .contract_steps import (
    _CREATE,
    LEASE,
    SHA,
    T0,
    _append,
    _at,
    _blocked,
    _entry,
    _key,
    _move,
    _raises,
    _submit,
    conflict_report,
)

__all__ = ["MovesContract"]


def _snapshot(store: Store) -> tuple[object, ...]:
    return (
        store.candidates(),
        list(store.log()),
        store.blocked_records(),
        store.follow_up_jobs(include_done=True),
        store.leases(),
    )


class _Boom(Exception):
    """Raised inside a transaction to make it roll back."""


class MovesContract:
    """Transactions, moves and the queue every store keeps."""

    # -- transaction(): commit and roll back ----------------------------------

    def test_transaction_commits_on_normal_exit(self, store: Store) -> None:
        """What a transaction wrote is visible to the store's reads once the block exits."""
        c = _submit(store, _key())
        assert store.candidate("feat") == c
        assert store.candidate_by_id(c.id) == c
        assert [t.event for t in store.history(c.id)] == [Event.SUBMIT]

    def test_transaction_rolls_back_every_write_on_error(self, store: Store) -> None:
        """An exception inside a transaction leaves no row of any table behind."""
        _submit(store, _key("kept"))
        before = _snapshot(store)

        def fail() -> None:
            with store.transaction() as tx:
                c = tx.insert_candidate(_key(), T0, _CREATE)
                c = _append(tx, c, _entry(c, Event.SUBMIT, State.PENDING, T0))
                tx.record_block(
                    c.key, conflict_report(), seq=1, at=T0, follow_up_slug="feat-fu",
                    previous_follow_up=None,
                )  # fmt: skip
                tx.put_lease(Lease(LEASE, "w1", c.id, T0, _at(60)))
                raise _Boom

        _raises(_Boom, fail)
        assert _snapshot(store) == before
        assert store.integrity_problems() == []

    # -- insert_candidate and append ------------------------------------------

    def test_insert_candidate_starts_at_seq_zero(self, store: Store) -> None:
        """A new candidate has seq 0, its own id, and is the slug's candidate inside the block."""
        with store.transaction() as tx:
            first = tx.insert_candidate(_key("one"), T0, _CREATE)
            second = tx.insert_candidate(_key("two"), T0, _CREATE)
            assert (first.seq, first.key, first.submitted_at) == (0, _key("one"), T0)
            assert first.id != second.id
            assert tx.candidate("one") == first
            _append(tx, first, _entry(first, Event.SUBMIT, State.PENDING, T0))
            _append(tx, second, _entry(second, Event.SUBMIT, State.PENDING, T0))

    def test_a_second_active_candidate_of_a_slug_is_a_conflict(self, store: Store) -> None:
        """Inserting another identity for a slug that has an active candidate writes nothing."""
        _submit(store, _key())
        before = _snapshot(store)

        def insert_rival() -> None:
            with store.transaction() as tx:
                rival = tx.insert_candidate(_key(sha="b" * 40), _at(1), _CREATE)
                _append(tx, rival, _entry(rival, Event.SUBMIT, State.PENDING, _at(1)))

        _raises(ConcurrencyConflict, insert_rival)
        assert _snapshot(store) == before

    def test_append_moves_the_candidate(self, store: Store) -> None:
        """append logs the entry and returns the candidate at its new state, seq and time."""
        c = _submit(store, _key())
        moved = _move(store, c, Event.START_APPLY, State.APPLYING, _at(1))
        assert (moved.id, moved.state, moved.seq, moved.updated_at) == (
            c.id,
            State.APPLYING,
            2,
            _at(1),
        )
        assert moved.submitted_at == T0
        assert store.candidate("feat") == moved
        [_, entry] = store.history(c.id)
        assert (entry.seq, entry.event, entry.source, entry.dest) == (
            2,
            Event.START_APPLY,
            State.PENDING,
            State.APPLYING,
        )

    def test_append_with_a_new_sha_changes_the_identity(self, store: Store) -> None:
        """An entry with another sha moves the candidate to that identity; the log keeps both."""
        c = _submit(store, _key())
        new = "b" * 40
        with store.transaction() as tx:
            moved = _append(tx, c, _entry(c, Event.START_APPLY, State.APPLYING, _at(1), sha=new))
        assert moved.key == _key(sha=new)
        assert store.candidate("feat") == moved
        assert [t.sha for t in store.history(c.id)] == [SHA, new]

    def test_append_from_a_stale_seq_is_a_conflict(self, store: Store) -> None:
        """Appending for a candidate read before another move raises ConcurrencyConflict."""
        stale = _submit(store, _key())
        _move(store, stale, Event.START_APPLY, State.APPLYING, _at(1))
        before = _snapshot(store)

        def append_stale() -> None:
            with store.transaction() as tx:
                _append(tx, stale, _entry(stale, Event.START_APPLY, State.APPLYING, _at(2)))

        _raises(ConcurrencyConflict, append_stale)
        assert _snapshot(store) == before

    def test_append_text_round_trips(self, store: Store) -> None:
        """Actor, reason and idempotency key come back exactly, non-ASCII text included."""
        c = _submit(store, _key())
        entry = Transition(
            c.id, 2, Event.START_APPLY, State.PENDING, State.APPLYING, SHA, "Zoë 🚀", _at(1),
            reason="weiß → gut", idempotency_key="ключ-1", request_digest="d" * 64,
        )  # fmt: skip
        with store.transaction() as tx:
            _append(tx, c, entry)
        assert store.history(c.id)[1] == entry

    # -- candidate, find_candidate, claim_next --------------------------------

    def test_candidate_prefers_the_active_one(self, store: Store) -> None:
        """candidate(slug) is the active candidate, else the newest integrated, else None."""
        with store.transaction() as tx:
            assert tx.candidate("feat") is None
        c = _move(store, _submit(store, _key()), Event.START_APPLY, State.APPLYING, T0)
        done = _move(store, c, Event.INTEGRATE, State.INTEGRATED, _at(1))
        with store.transaction() as tx:
            assert tx.candidate("feat") == done
        again = _submit(store, _key(sha="b" * 40), _at(2))
        with store.transaction() as tx:
            assert tx.candidate("feat") == again
        assert store.candidate("feat") == again

    def test_find_candidate_matches_the_whole_identity(self, store: Store) -> None:
        """find_candidate matches one whole identity in any state; another branch or sha is None."""
        c = _submit(store, _key())
        with store.transaction() as tx:
            assert tx.find_candidate(_key()) == c
            assert tx.find_candidate(_key(sha="b" * 40)) is None
            assert tx.find_candidate(_key(branch="other")) is None
            assert tx.find_candidate(_key("else")) is None

    def test_claim_next_is_the_oldest_queued(self, store: Store) -> None:
        """claim_next names the queue's head (first submitted), and None on an empty queue."""
        with store.transaction() as tx:
            assert tx.claim_next() is None
        a = _submit(store, _key("aa"), _at(1))
        _submit(store, _key("bb"), _at(2))
        _submit(store, _key("cc"), _at(3))
        with store.transaction() as tx:
            assert tx.claim_next() == "aa"
        _move(store, a, Event.START_APPLY, State.APPLYING, _at(4))
        with store.transaction() as tx:
            assert tx.claim_next() == "bb"
        assert store.next_candidate() == store.candidate("bb")

    def test_queue_is_in_submission_order_and_a_requeue_keeps_the_place(self, store: Store) -> None:
        """queue() lists by stored position: a later move or a requeue does not reorder it."""
        a = _submit(store, _key("aa"), _at(1))
        b = _submit(store, _key("bb"), _at(2))
        _submit(store, _key("cc"), _at(3))
        assert [c.key.slug for c in store.queue()] == ["aa", "bb", "cc"]
        started = _move(store, a, Event.START_APPLY, State.APPLYING, _at(4))
        assert [c.key.slug for c in store.queue()] == ["bb", "cc"]
        _move(store, started, Event.REQUEUE, State.PENDING, _at(5))
        # bb last moved before aa did, yet aa keeps its place at the head.
        assert [c.key.slug for c in store.queue()] == ["aa", "bb", "cc"]
        with store.transaction() as tx:
            assert tx.claim_next() == "aa"
        assert store.next_candidate() == store.candidate("aa")
        assert store.queue()[1] == b

    def test_a_reentering_step_goes_to_the_back_of_the_queue(self, store: Store) -> None:
        """A step that ``reenters`` (a resume after a block) takes the queue's last place."""
        a, _ = _blocked(store, _key("aa"), "aa-follow-up", _at(1))
        _submit(store, _key("bb"), _at(2))
        a = _move(store, a, Event.START_REMEDIATION, State.REMEDIATING, _at(3))
        with store.transaction() as tx:
            tx.close_blocked(a.key, _at(4))
            resumed = _append(tx, a, _entry(a, Event.RESUME, State.RETRY, _at(4)))
        assert resumed.state is State.RETRY
        assert [c.key.slug for c in store.queue()] == ["bb", "aa"]
        with store.transaction() as tx:
            assert tx.claim_next() == "bb"

    # -- idempotency keys -----------------------------------------------------

    def test_transition_by_idempotency_key(self, store: Store) -> None:
        """The entry logged with a key is found by that key, only for its own candidate."""
        c = _submit(store, _key())
        other = _submit(store, _key("other"))
        with store.transaction() as tx:
            _append(
                tx, c, _entry(c, Event.START_APPLY, State.APPLYING, _at(1), idempotency_key="k")
            )
        with store.transaction() as tx:
            found = tx.transition_by_idempotency_key(c.id, "k")
            assert found == store.history(c.id)[1]
            assert tx.transition_by_idempotency_key(c.id, "other-key") is None
            assert tx.transition_by_idempotency_key(other.id, "k") is None
