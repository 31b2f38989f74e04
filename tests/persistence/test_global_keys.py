"""Idempotency keys are global on every store: a key names one request forever."""

from __future__ import annotations

import pytest

from mergegate.persistence.contract import ManualClock
from mergegate.statemachine import CandidateKey, Engine, IdempotencyKeyReused, State, Store


def test_a_key_retried_after_a_withdraw_returns_the_first_answer(store: Store) -> None:
    """submit with k1, withdraw, submit again with k1: the first entry, nothing queued."""
    engine = Engine(store, clock=ManualClock())
    key = CandidateKey("feat", "feat", "a" * 40)
    first = engine.submit(key, idempotency_key="k1")
    engine.withdraw("feat", why="not now")
    again = engine.submit(key, idempotency_key="k1")
    assert again.transition == first.transition
    assert [c.state for c in store.candidates()] == [State.WITHDRAWN]


def test_a_key_used_on_one_candidate_is_refused_on_another(store: Store) -> None:
    """The same key on a second candidate's submit or move is refused; nothing is written."""
    engine = Engine(store, clock=ManualClock())
    engine.submit(CandidateKey("one", "one", "a" * 40), idempotency_key="k1")
    engine.submit(CandidateKey("two", "two", "b" * 40))
    with pytest.raises(IdempotencyKeyReused):
        engine.submit(CandidateKey("three", "three", "c" * 40), idempotency_key="k1")
    with pytest.raises(IdempotencyKeyReused):
        engine.withdraw("two", why="x", idempotency_key="k1")
    assert [c.key.slug for c in store.candidates()] == ["one", "two"]
    assert store.candidate("two") is not None
    assert store.candidate("two").state is State.PENDING  # type: ignore[union-attr]
