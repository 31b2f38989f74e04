"""Supersede and withdraw through the Engine, on each real store (SQLite file, PostgreSQL)."""

from __future__ import annotations

import pytest

from mergegate.statemachine import (
    TABLE,
    BlockedReport,
    CandidateKey,
    DuplicateCandidate,
    Engine,
    Event,
    Evidence,
    IllegalTransition,
    InvalidInput,
    Reason,
    State,
    Store,
)

A, B, C, MAIN = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)
KEY = CandidateKey("feat", "feat", A)


def _report() -> BlockedReport:
    return BlockedReport(Reason.MERGE_CONFLICT, MAIN, Evidence(conflicted_paths=("x.txt",)))


def _snapshot(store: Store) -> tuple[object, ...]:
    return (store.candidates(), list(store.log()), store.blocked_records(), store.leases())


def _to(engine: Engine, state: State) -> None:
    """Drive the candidate of KEY from pending to ``state``."""
    path = {
        State.PENDING: [],
        State.BLOCKED: ["start", "block"],
        State.REMEDIATING: ["start", "block", "remediate"],
        State.RETRY: ["start", "block", "remediate", "resume"],
    }[state]
    for step in path:
        if step == "start":
            engine.start_apply("feat", owner="w")
        elif step == "block":
            engine.block("feat", _report())
        elif step == "remediate":
            engine.start_remediation("feat")
        else:
            engine.resume("feat", force_reason="test")


@pytest.mark.parametrize("state", [State.PENDING, State.RETRY])
def test_supersede_replaces_the_sha_and_logs_it(store: Store, state: State) -> None:
    """A supersede from pending or retry logs the move, keeps the state, and stores the new sha."""
    engine = Engine(store)
    engine.submit(KEY)
    _to(engine, state)
    out = engine.supersede("feat", new_sha=B)
    assert (out.state, out.candidate.key.sha) == (state, B)
    assert out.transition is not None
    assert (out.transition.event, out.transition.sha) == (Event.SUPERSEDE, B)
    assert [t.event for t in store.history_of("feat")][-1] is Event.SUPERSEDE
    assert engine.verify() == []
    assert store.integrity_problems() == []


def test_supersede_from_applying_is_refused_and_writes_nothing(store: Store) -> None:
    """An apply in flight keeps its sha: supersede is IllegalTransition with nothing written."""
    engine = Engine(store)
    engine.submit(KEY)
    engine.start_apply("feat", owner="w")
    before = _snapshot(store)
    with pytest.raises(IllegalTransition):
        engine.supersede("feat", new_sha=B)
    assert _snapshot(store) == before


def test_superseded_sha_is_not_what_integrates(store: Store) -> None:
    """After a supersede the apply starts and integrates the new sha; the old one never appears."""
    engine = Engine(store)
    engine.submit(KEY)
    engine.supersede("feat", new_sha=B)
    started = engine.start_apply("feat", owner="w")
    assert started.candidate.key.sha == B
    done = engine.integrate("feat", main_sha=MAIN)
    assert done.state is State.INTEGRATED
    assert [t.sha for t in store.history_of("feat")] == [A, B, B, B]


@pytest.mark.parametrize("state", [State.PENDING, State.BLOCKED, State.REMEDIATING, State.RETRY])
def test_withdraw_from_each_allowed_state(store: Store, state: State) -> None:
    """withdraw moves pending/blocked/remediating/retry to withdrawn, logs why, frees the slug."""
    engine = Engine(store)
    engine.submit(KEY)
    _to(engine, state)
    out = engine.withdraw("feat", why="typo in the slug")
    assert out.state is State.WITHDRAWN
    assert out.transition is not None
    assert (out.transition.event, out.transition.reason) == (Event.WITHDRAW, "typo in the slug")
    assert out.blocked is None
    record = store.blocked_record(KEY)
    if state in TABLE.carrying_blocked | {State.RETRY}:
        assert record is not None
        assert record.status == "resumed"  # closed: nothing is left open
    else:
        assert record is None
    again = engine.submit(CandidateKey("feat", "feat", C))
    assert (again.state, again.candidate.key.sha) == (State.PENDING, C)
    assert engine.verify() == []
    assert store.integrity_problems() == []


def test_withdraw_from_applying_is_refused_and_writes_nothing(store: Store) -> None:
    """A candidate holding the lease cannot be withdrawn; nothing is written."""
    engine = Engine(store)
    engine.submit(KEY)
    engine.start_apply("feat", owner="w")
    before = _snapshot(store)
    with pytest.raises(IllegalTransition) as caught:
        engine.withdraw("feat", why="changed my mind")
    assert "\n" not in str(caught.value)
    assert _snapshot(store) == before


def test_withdraw_needs_a_reason(store: Store) -> None:
    """An empty reason is InvalidInput and writes nothing."""
    engine = Engine(store)
    engine.submit(KEY)
    before = _snapshot(store)
    with pytest.raises(InvalidInput, match="withdraw reason"):
        engine.withdraw("feat", why="  ")
    assert _snapshot(store) == before


def test_withdrawn_identity_can_be_submitted_again(store: Store) -> None:
    """The same (slug, branch, sha) after a withdraw queues a new candidate, not a no-op."""
    engine = Engine(store)
    first = engine.submit(KEY)
    engine.withdraw("feat", why="not yet")
    second = engine.submit(KEY)
    assert second.transition is not None
    assert second.state is State.PENDING
    assert second.candidate.id != first.candidate.id
    assert store.next_candidate() == second.candidate


def test_withdrawn_candidate_leaves_the_queue(store: Store) -> None:
    """A withdrawn candidate is never claimed: apply_next's queue skips it."""
    engine = Engine(store)
    engine.submit(KEY)
    engine.submit(CandidateKey("other", "other", B))
    engine.withdraw("feat", why="dropped")
    head = store.next_candidate()
    assert head is not None
    assert head.key.slug == "other"


def test_a_different_sha_is_still_refused_while_blocked(store: Store) -> None:
    """Only pending and retry supersede: a blocked slug still refuses a second identity."""
    engine = Engine(store)
    engine.submit(KEY)
    _to(engine, State.BLOCKED)
    with pytest.raises(DuplicateCandidate):
        engine.submit(CandidateKey("feat", "feat", B))
