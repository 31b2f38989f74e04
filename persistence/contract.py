"""The contract every Store passes, as a test kit: the Store and Transaction API itself.

Subclass :class:`StoreContract` in a pytest module and provide a ``store``
fixture that yields a fresh, empty store; every ``test_*`` method then runs
against it. The cases call :class:`~mergegate.statemachine.extension.Transaction` and
:class:`~mergegate.statemachine.Store` directly, one group per method, so a new
store is judged on the protocol the Engine relies on, not through the Engine.
mergegate runs it against SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mergegate.statemachine import (
    BlockedReport,
    Candidate,
    CandidateKey,
    ConcurrencyConflict,
    Event,
    Evidence,
    FollowUpState,
    Lease,
    LeaseHeld,
    MergegateError,
    Reason,
    State,
    Store,
    Transition,
)

from .contract_controls import QueueControlsContract
from .contract_steps import _CREATE, T0, _append, _entry, _submit

__all__ = ["ManualClock", "StoreContract", "conflict_report"]

SHA = "a" * 40
MAIN = "0" * 40
LEASE = "main"


class ManualClock:
    """A clock the test moves by hand, so leases and ``--since`` are exact."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or T0

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def conflict_report(*paths: str, main: str = MAIN) -> BlockedReport:
    """A ``merge_conflict`` report on ``paths`` against ``main``."""
    return BlockedReport(Reason.MERGE_CONFLICT, main, Evidence(conflicted_paths=paths or ("a",)))


def _key(slug: str = "feat", sha: str = SHA, branch: str | None = None) -> CandidateKey:
    return CandidateKey(slug, branch or slug, sha)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _move(store: Store, candidate: Candidate, event: Event, dest: State, at: datetime) -> Candidate:
    with store.transaction() as tx:
        return _append(tx, candidate, _entry(candidate, event, dest, at))


def _blocked(
    store: Store, key: CandidateKey, follow_up: str, at: datetime = T0
) -> tuple[Candidate, int]:
    """Submit ``key``, take it to ``blocked`` and record the block; returns it and the record id."""
    c = _move(store, _submit(store, key, at), Event.START_APPLY, State.APPLYING, at)
    with store.transaction() as tx:
        c = _append(tx, c, _entry(c, Event.BLOCK, State.BLOCKED, at))
        record = tx.record_block(
            key, conflict_report(), seq=c.seq, at=at, follow_up_slug=follow_up,
            previous_follow_up=None,
        )  # fmt: skip
    return c, record.id


def _snapshot(store: Store) -> tuple[object, ...]:
    return (
        store.candidates(),
        list(store.log()),
        store.blocked_records(),
        store.follow_up_jobs(include_done=True),
        store.leases(),
    )


def _raises(kind: type[BaseException], call: Callable[[], object]) -> BaseException:
    """Run ``call``; return what it raised, which must be a ``kind``."""
    try:
        call()
    except kind as err:
        return err
    raise AssertionError(f"{kind.__name__} not raised")


class _Boom(Exception):
    """Raised inside a transaction to make it roll back."""


class StoreContract(QueueControlsContract):
    """Behaviour every store must show; each test gets a fresh ``store`` fixture."""

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

    # -- the ledger: identity binding and acknowledged moves ------------------

    def test_bind_repository_keeps_the_first_binding(self, store: Store) -> None:
        """identity is None until bound; a second bind, even to another repository, keeps it."""
        assert store.identity() is None
        first = store.bind_repository("1" * 40, actor="init", at=T0)
        assert first.repository == "1" * 40
        assert (first.bound_by, first.bound_at) == ("init", T0)
        assert len(first.store_id) == 32
        assert store.bind_repository("2" * 40, actor="other", at=_at(1)) == first
        assert store.identity() == first

    def test_bind_repository_refuses_a_bad_root_and_writes_nothing(self, store: Store) -> None:
        """A repository id that is not a full commit id is refused before anything is written."""
        err = _raises(MergegateError, lambda: store.bind_repository("main", actor="init", at=T0))
        assert "repository root commit" in str(err), err
        assert store.identity() is None

    def test_acknowledge_logs_once_per_commit(self, store: Store) -> None:
        """An acknowledgement is kept as first logged; the list is oldest first."""
        assert store.acknowledgements() == []
        b = store.acknowledge("b" * 40, "hotfix pushed to the server", actor="ops", at=_at(2))
        a = store.acknowledge("a" * 40, "release tag commit", actor="ops", at=_at(1))
        again = store.acknowledge("b" * 40, "something else", actor="mallory", at=_at(3))
        assert again == b
        assert (b.sha, b.why, b.actor, b.at) == (
            "b" * 40,
            "hotfix pushed to the server",
            "ops",
            _at(2),
        )
        assert store.acknowledgements() == [a, b]
        _raises(MergegateError, lambda: store.acknowledge("c" * 40, "  ", actor="ops", at=_at(4)))
        _raises(MergegateError, lambda: store.acknowledge("HEAD", "why", actor="ops", at=_at(4)))
        assert store.acknowledgements() == [a, b]

    def test_approve_logs_once_per_slug_and_sha(self, store: Store) -> None:
        """An approval is kept as first logged, per exact slug and sha; bad input writes nothing."""
        assert store.approvals() == []
        assert store.approval("aa", "a" * 40) is None
        first = store.approve("aa", "a" * 40, "reviewed the new checks", actor="ops", at=_at(1))
        again = store.approve("aa", "a" * 40, "something else", actor="mallory", at=_at(2))
        other = store.approve("aa", "b" * 40, "reviewed again", actor="ops", at=_at(3))
        assert again == first
        assert (first.slug, first.sha, first.why, first.actor, first.at) == (
            "aa",
            "a" * 40,
            "reviewed the new checks",
            "ops",
            _at(1),
        )
        assert store.approval("aa", "a" * 40) == first
        assert store.approval("bb", "a" * 40) is None
        assert store.approvals() == [first, other]
        for bad in (
            lambda: store.approve("aa", "c" * 40, " ", actor="ops", at=_at(4)),
            lambda: store.approve("aa", "abc123", "why", actor="ops", at=_at(4)),
            lambda: store.approve("-x", "c" * 40, "why", actor="ops", at=_at(4)),
        ):
            _raises(MergegateError, bad)
        assert store.approvals() == [first, other]

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

    # -- blocked outcomes and follow-ups --------------------------------------

    def test_record_block_creates_the_outcome_and_its_outbox_row(self, store: Store) -> None:
        """A first block makes an open record with one occurrence, pending follow-up, one job."""
        c, record_id = _blocked(store, _key(), "feat-fu")
        record = store.blocked_record(_key())
        assert record is not None
        assert record.id == record_id
        assert (record.key, record.reason, record.main_sha, record.follow_up_slug) == (
            _key(),
            Reason.MERGE_CONFLICT,
            MAIN,
            "feat-fu",
        )
        assert (record.status, record.follow_up_state, record.occurrences) == (
            "open",
            FollowUpState.PENDING,
            1,
        )
        assert store.blocked_record_by_id(record_id) == record
        [occurrence] = store.occurrences(record_id)
        assert (occurrence.number, occurrence.seq, occurrence.report) == (
            1,
            c.seq,
            conflict_report(),
        )
        [job] = store.follow_up_jobs()
        assert (job.follow_up_slug, job.blocked_id, job.attempts, job.done) == (
            "feat-fu",
            record_id,
            0,
            False,
        )
        assert store.integrity_problems() == []

    def test_record_block_again_appends_an_occurrence(self, store: Store) -> None:
        """A replayed block keeps the record and its one outbox row; the evidence grows."""
        c, record_id = _blocked(store, _key(), "feat-fu")
        report = BlockedReport(Reason.PRECONDITION_FAILED, "9" * 40, Evidence(diagnostic="gone"))
        with store.transaction() as tx:
            c = _append(tx, c, _entry(c, Event.BLOCK, State.BLOCKED, _at(5)))
            again = tx.record_block(
                _key(), report, seq=c.seq, at=_at(5), follow_up_slug="ignored",
                previous_follow_up=None,
            )  # fmt: skip
            assert tx.blocked_record(_key()) == again
        assert (again.id, again.follow_up_slug, again.occurrences) == (record_id, "feat-fu", 2)
        assert (again.reason, again.main_sha, again.last_blocked_at) == (
            Reason.PRECONDITION_FAILED,
            "9" * 40,
            _at(5),
        )
        assert [(o.number, o.report) for o in store.occurrences(record_id)] == [
            (1, conflict_report()),
            (2, report),
        ]
        assert len(store.follow_up_jobs()) == 1
        assert store.integrity_problems() == []

    def test_blocked_record_inside_a_transaction(self, store: Store) -> None:
        """blocked_record is None for an identity never blocked, the record once it is."""
        _submit(store, _key("clean"))
        _blocked(store, _key(), "feat-fu")
        with store.transaction() as tx:
            assert tx.blocked_record(_key("clean")) is None
            assert tx.blocked_record(_key()) == store.blocked_record(_key())

    def test_follow_up_owner_and_latest_follow_up(self, store: Store) -> None:
        """A follow-up slug names its identity; the newest follow-up of a slug is found by slug."""
        first, _ = _blocked(store, _key(), "feat-fu")
        with store.transaction() as tx:
            assert tx.follow_up_owner("feat-fu") == _key()
            assert tx.follow_up_owner("nobody-fu") is None
            assert tx.latest_follow_up("feat") == "feat-fu"
            assert tx.latest_follow_up("other") is None
        c = _move(store, first, Event.START_REMEDIATION, State.REMEDIATING, _at(1))
        new = _key(sha="b" * 40)
        with store.transaction() as tx:
            c = _append(tx, c, _entry(c, Event.RESUME, State.RETRY, _at(2), sha=new.sha))
            tx.close_blocked(_key(), _at(2))
        c = _move(store, c, Event.START_APPLY, State.APPLYING, _at(3))
        with store.transaction() as tx:
            c = _append(tx, c, _entry(c, Event.BLOCK, State.BLOCKED, _at(4)))
            second = tx.record_block(
                new, conflict_report(), seq=c.seq, at=_at(4), follow_up_slug="feat-fu-2",
                previous_follow_up="feat-fu",
            )  # fmt: skip
            assert tx.latest_follow_up("feat") == "feat-fu-2"
        assert second.previous_follow_up == "feat-fu"
        with store.transaction() as tx:
            assert tx.follow_up_owner("feat-fu-2") == new
            assert tx.latest_follow_up("feat") == "feat-fu-2"

    def test_close_blocked_marks_the_outcome_resumed(self, store: Store) -> None:
        """close_blocked sets the status to resumed; other identities' records are untouched."""
        c, _ = _blocked(store, _key(), "feat-fu")
        _blocked(store, _key("other"), "other-fu")
        c = _move(store, c, Event.START_REMEDIATION, State.REMEDIATING, _at(1))
        with store.transaction() as tx:
            _append(tx, c, _entry(c, Event.RESUME, State.RETRY, _at(2)))
            tx.close_blocked(_key(), _at(2))
            closed = tx.blocked_record(_key())
            assert closed is not None
            assert closed.status == "resumed"
        statuses = {r.key.slug: r.status for r in store.blocked_records()}
        assert statuses == {"feat": "resumed", "other": "open"}

    def test_finish_follow_up_retires_the_job_only_when_created(self, store: Store) -> None:
        """A failed materialization stays queued with its error; CREATED marks the job done."""
        _blocked(store, _key(), "feat-fu")
        store.finish_follow_up("feat-fu", FollowUpState.FAILED, "disk full")
        record = store.blocked_record(_key())
        assert record is not None
        assert (record.follow_up_state, record.follow_up_error) == (
            FollowUpState.FAILED,
            "disk full",
        )
        assert [j.attempts for j in store.follow_up_jobs()] == [1]
        store.finish_follow_up("feat-fu", FollowUpState.CREATED, None)
        assert store.follow_up_jobs() == []
        [job] = store.follow_up_jobs(include_done=True)
        assert (job.attempts, job.done) == (2, True)

    # -- leases ---------------------------------------------------------------

    def test_put_lease_then_read_it_back(self, store: Store) -> None:
        """A lease put in a transaction reads back equal, inside it and from the store."""
        c = _move(store, _submit(store, _key()), Event.START_APPLY, State.APPLYING, T0)
        lease = Lease(LEASE, "w1", c.id, T0, _at(30))
        with store.transaction() as tx:
            assert tx.lease(LEASE) is None
            tx.put_lease(lease)
            assert tx.lease(LEASE) == lease
        assert store.leases() == [lease]
        with store.transaction() as tx:
            assert tx.lease(LEASE) == lease
            assert tx.lease("other") is None

    def test_put_lease_replaces_the_holder(self, store: Store) -> None:
        """Putting a lease that exists replaces its owner, candidate and times."""
        with store.transaction() as tx:
            tx.put_lease(Lease(LEASE, "w1", None, T0, _at(30)))
        taken = Lease(LEASE, "w2", None, _at(40), _at(70))
        with store.transaction() as tx:
            tx.put_lease(taken)
        assert store.leases() == [taken]

    def test_drop_lease_only_for_its_candidate(self, store: Store) -> None:
        """drop_lease releases the lease held for that candidate and no other."""
        c = _move(store, _submit(store, _key()), Event.START_APPLY, State.APPLYING, T0)
        lease = Lease(LEASE, "w1", c.id, T0, _at(30))
        with store.transaction() as tx:
            tx.put_lease(lease)
        with store.transaction() as tx:
            tx.drop_lease(LEASE, c.id + 1000)
        assert store.leases() == [lease]
        with store.transaction() as tx:
            tx.drop_lease(LEASE, c.id)
            assert tx.lease(LEASE) is None
        assert store.leases() == []

    def test_renew_lease(self, store: Store) -> None:
        """The owner pushes its expiry; another owner is refused; a lost lease says so."""
        with store.transaction() as tx:
            tx.put_lease(Lease(LEASE, "w1", None, T0, _at(30)))
        renewed = store.renew_lease(LEASE, "w1", _at(90))
        assert renewed == Lease(LEASE, "w1", None, T0, _at(90))
        held = _raises(LeaseHeld, lambda: store.renew_lease(LEASE, "w2", _at(120)))
        assert isinstance(held, LeaseHeld)
        assert (held.owner, held.lost) == ("w1", False)
        lost = _raises(LeaseHeld, lambda: store.renew_lease("gone", "w1", _at(120)))
        assert isinstance(lost, LeaseHeld)
        assert (lost.owner, lost.lost) == ("w1", True)
        assert store.leases() == [renewed]

    # -- the read side --------------------------------------------------------

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
