"""An integrator's release for a cause not the candidate's is a plain requeue, never counted."""

from __future__ import annotations

import pytest

from mergegate.statemachine import CandidateKey, Engine, Event, State, Store

MAIN = "b" * 40


def _chain_then_release(engine: Engine, why: str | None) -> State:
    """Three times: a chain of w1 takes the candidate, then w1's own recovery settles it."""
    for _ in range(3):
        engine.hold_lease("w1")
        started = engine.start_next(owner="w1")
        assert started is not None
        engine.recover(MAIN, abandoned=lambda lease: lease.owner == "w1", why=why)
    return engine.get("c").state


@pytest.mark.parametrize(
    ("why", "expected"),
    [("the host was busy: main.lock is held", State.PENDING), (None, State.BLOCKED)],
    ids=["host-busy", "stopped"],
)
def test_a_chain_released_for_the_host_is_requeued_not_interrupted(
    store: Store, why: str | None, expected: State
) -> None:
    """With ``why`` three releases leave the link pending with that note; without, it blocks."""
    engine = Engine(store)
    engine.submit(CandidateKey("c", "c", "a" * 40))
    assert _chain_then_release(engine, why) is expected
    requeues = [t for t in store.history(engine.get("c").id) if t.event is Event.REQUEUE]
    if why is not None:
        assert [(t.reason, t.interrupted) for t in requeues] == [(why, None)] * 3
    else:
        assert all(t.interrupted for t in requeues)
