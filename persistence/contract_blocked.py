"""The blocked outcomes' part of the store contract (:class:`~.contract.StoreContract` runs it).

A block records its outcome, its evidence as an occurrence and its follow-up's
outbox row; a replay adds an occurrence to the same record; a resume closes
it; a follow-up names its identity, and its materialization is recorded on
the record and its outbox row.
"""

from __future__ import annotations

from mergegate.statemachine import (
    BlockedReport,
    Event,
    Evidence,
    FollowUpState,
    Reason,
    State,
    Store,
)

from .contract_steps import (
    MAIN,
    _append,
    _at,
    _blocked,
    _entry,
    _key,
    _move,
    _submit,
    conflict_report,
)

__all__ = ["BlockedContract"]


class BlockedContract:
    """The blocked outcomes and follow-ups every store keeps."""

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
