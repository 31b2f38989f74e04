"""The chain lease on each real store: joined by start_apply, settled by recover, released."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mergegate.statemachine import CandidateKey, Engine, Event, LeaseHeld, State, Store

SHA = "a" * 40
MAIN = "b" * 40


def test_a_chain_lease_is_joined_settled_and_released(store: Store) -> None:
    """Two links join one lease; recover after expiry integrates one, requeues one, drops it."""
    engine = Engine(store)
    for slug in ("one", "two", "three"):
        engine.submit(CandidateKey(slug, slug, SHA))
    lease = engine.hold_lease("chain")
    assert lease.candidate_id is None
    engine.start_apply("one", owner="chain")
    engine.start_apply("two", owner="chain")
    with pytest.raises(LeaseHeld):
        engine.start_apply("three", owner="other")
    assert store.integrity_problems() == []
    later = Engine(store, clock=lambda: engine.clock() + timedelta(hours=1))
    with pytest.raises(LeaseHeld):
        # Expired, not yet recovered: the owner can no longer add links.
        later.start_apply("three", owner="chain")
    outcomes = later.recover(MAIN, contains=lambda sha: False)
    assert [(o.candidate.key.slug, o.candidate.state) for o in outcomes] == [
        ("one", State.PENDING),
        ("two", State.PENDING),
    ]
    assert all(o.transition is not None and o.transition.event is Event.REQUEUE for o in outcomes)
    assert store.leases() == []
    assert later.recover(MAIN) == []
    assert engine.release_lease("chain") is False
    engine.hold_lease("chain")
    engine.start_apply("three", owner="chain")
    engine.requeue("three", why="rebuilt: base invalidated by one (checks_failed)")
    assert store.history(engine.get("three").id)[-1].reason == (
        "rebuilt: base invalidated by one (checks_failed)"
    )
    assert engine.release_lease("chain") is True
    assert store.leases() == []
    assert engine.verify() == []
    assert store.integrity_problems() == []


def test_a_chain_recovered_says_which_cause_ended_its_lease(store: Store) -> None:
    """A chain settled for a gone holder says so; one settled for expiry names the expiry."""
    engine = Engine(store)
    for slug in ("one", "two"):
        engine.submit(CandidateKey(slug, slug, SHA))
    engine.hold_lease("chain")
    engine.start_apply("one", owner="chain")
    engine.recover(MAIN, abandoned=lambda lease: lease.owner == "chain")
    said = store.history(engine.get("one").id)[-1].interrupted
    assert said == "the chain lease held by chain was abandoned: its process is gone", said
    engine.hold_lease("chain")
    engine.start_apply("two", owner="chain")
    later = Engine(store, clock=lambda: engine.clock() + timedelta(hours=1))
    later.recover(MAIN)
    said = store.history(engine.get("two").id)[-1].interrupted
    assert said is not None
    assert said.startswith("the chain lease held by chain expired at "), said
