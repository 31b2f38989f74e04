"""The queue controls' part of the store contract (:class:`~.contract.StoreContract` runs it).

A store keeps the controls as a log and answers what is in force from it;
its claim finds no head while the queue is paused, and ``promote`` gives a
candidate the first place. The Engine checks a control against what is in
force; these cases call the Transaction and the Store directly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mergegate.statemachine import Candidate, CandidateKey, Control, Store

from .contract_steps import _submit

__all__ = ["QueueControlsContract"]

_T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return _T0 + timedelta(seconds=seconds)


def _queued(store: Store, slug: str, at: datetime) -> Candidate:
    return _submit(store, CandidateKey(slug, slug, "c" * 40), at)


class QueueControlsContract:
    """The queue controls every store keeps."""

    def test_a_new_store_has_no_controls_in_force(self, store: Store) -> None:
        """Nothing is paused or draining, and the control log is empty, until one is logged."""
        assert store.queue_controls().paused is None
        assert store.queue_controls().draining is None
        assert store.control_log() == []

    def test_the_newest_of_each_pair_is_in_force(self, store: Store) -> None:
        """A pause is in force until an unpause; a drain until an undrain; the two are apart."""
        with store.transaction() as tx:
            pause = tx.log_control(
                Control.PAUSE, actor="ana", at=_at(1), why="release freeze", requeue=True
            )
        with store.transaction() as tx:
            drain = tx.log_control(Control.DRAIN, actor="bo", at=_at(2), why="maintenance")
        now = store.queue_controls()
        assert now.paused == pause
        assert (pause.actor, pause.why, pause.at, pause.requeue) == (
            "ana",
            "release freeze",
            _at(1),
            True,
        )
        assert now.draining == drain
        with store.transaction() as tx:
            tx.log_control(Control.UNPAUSE, actor="ana", at=_at(3), why=None)
        assert store.queue_controls().paused is None
        assert store.queue_controls().draining == drain
        assert [e.action for e in store.control_log()] == [
            Control.PAUSE, Control.DRAIN, Control.UNPAUSE
        ]  # fmt: skip
        assert [e.action for e in store.control_log(limit=1)] == [Control.UNPAUSE]

    def test_a_paused_queue_has_no_head_to_claim(self, store: Store) -> None:
        """claim_next finds nothing while paused, and the same head once unpaused."""
        _queued(store, "aa", _at(1))
        with store.transaction() as tx:
            tx.log_control(Control.PAUSE, actor="ana", at=_at(2), why="freeze")
        with store.transaction() as tx:
            assert tx.claim_next() is None
            assert tx.queue_controls().paused is not None
        with store.transaction() as tx:
            tx.log_control(Control.UNPAUSE, actor="ana", at=_at(3), why=None)
        with store.transaction() as tx:
            assert tx.claim_next() == "aa"

    def test_promote_puts_a_candidate_first(self, store: Store) -> None:
        """A promoted candidate heads the queue, and claim_next takes it first."""
        for n, slug in enumerate(("aa", "bb", "cc")):
            last = _queued(store, slug, _at(n))
        with store.transaction() as tx:
            tx.promote(last.id)
            tx.log_control(Control.PROMOTE, actor="ana", at=_at(5), why="hotfix", slug="cc")
        assert [c.key.slug for c in store.queue()] == ["cc", "aa", "bb"]
        assert store.next_candidate() == store.candidate("cc")
        with store.transaction() as tx:
            assert tx.claim_next() == "cc"
        assert store.control_log()[-1].slug == "cc"

    def test_a_control_rolls_back_with_its_transaction(self, store: Store) -> None:
        """A control logged in a transaction that fails is not in force and not in the log."""

        class Boom(Exception):
            pass

        try:
            with store.transaction() as tx:
                tx.log_control(Control.PAUSE, actor="ana", at=_at(1), why="freeze")
                raise Boom
        except Boom:
            pass
        assert store.queue_controls().paused is None
        assert store.control_log() == []
