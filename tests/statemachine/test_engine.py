"""The Engine on its own, on a real SQLite file: every move, its effects, hooks, idempotency."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    TABLE,
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    Engine,
    Event,
    Evidence,
    Guidance,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
    LeaseHeld,
    Outcome,
    Reason,
    Request,
    State,
    on_enter,
    on_event,
    on_outcome,
)

SHA = "a" * 40
MAIN = "9" * 40
CONFLICT = BlockedReport(
    Reason.MERGE_CONFLICT, MAIN, Evidence(conflicted_paths=("src/a.py",)), detail="1 path"
)
FAILED = BlockedReport(Reason.PRECONDITION_FAILED, MAIN, Evidence(diagnostic="no main"))


class Guide:
    """A real, deterministic guide: it names the follow-up."""

    def render(self, candidate: Candidate, record: BlockedRecord) -> Guidance:
        return Guidance("INTEGRATION_BLOCKED", (str(candidate.key),), (record.follow_up_slug,))


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    """A fresh SQLite file store."""
    return SQLiteStore(tmp_path / "db.sqlite3")


def engine_on(store: SQLiteStore, **kwargs: object) -> Engine:
    return Engine(store, actor="t", **kwargs)  # type: ignore[arg-type]


def snapshot(store: SQLiteStore) -> object:
    """Everything an Engine call may write, to compare before and after a refused call."""
    return (
        [(c.key, c.state, c.seq) for c in store.candidates()],
        list(store.log()),
        [(b.key, b.status, b.occurrences) for b in store.blocked_records()],
        [(j.follow_up_slug, j.done) for j in store.follow_up_jobs(include_done=True)],
        [(lease.owner, lease.candidate_id) for lease in store.leases()],
    )


def drive(engine: Engine, state: State, slug: str = "feat") -> Outcome:
    """Move a fresh candidate ``slug`` to ``state`` along the shortest path."""
    path: dict[State, list[Callable[[], Outcome]]] = {
        State.PENDING: [],
        State.APPLYING: [lambda: engine.start_apply(slug, owner="w")],
        State.INTEGRATED: [
            lambda: engine.start_apply(slug, owner="w"),
            lambda: engine.integrate(slug, main_sha=MAIN),
        ],
        State.BLOCKED: [
            lambda: engine.start_apply(slug, owner="w"),
            lambda: engine.block(slug, CONFLICT),
        ],
    }
    path[State.REMEDIATING] = [*path[State.BLOCKED], lambda: engine.start_remediation(slug)]
    path[State.RETRY] = [
        *path[State.REMEDIATING],
        lambda: engine.resume(slug, force_reason="test"),
    ]
    path[State.WITHDRAWN] = [lambda: engine.withdraw(slug, why="test")]
    outcome = engine.submit(CandidateKey(slug, slug, SHA))
    for step in path[state]:
        outcome = step()
    assert outcome.state is state
    return outcome


# -- every move and its effects ----------------------------------------------


def test_every_move_writes_its_entry_and_its_effects(store: SQLiteStore) -> None:
    """The whole blocked flow: each move is logged and carries out its rule's effects."""
    engine = engine_on(store, guide=Guide())
    assert engine.submit(CandidateKey("feat", "feat", SHA)).state is State.PENDING
    assert store.leases() == []
    started = engine.start_apply("feat", owner="w1")
    [lease] = store.leases()
    assert (lease.owner, lease.candidate_id) == ("w1", started.candidate.id)
    blocked = engine.block("feat", CONFLICT)
    assert blocked.state is State.BLOCKED
    assert store.leases() == []
    assert blocked.blocked is not None
    assert blocked.blocked.status == "open"
    assert blocked.guidance is not None
    assert [j.follow_up_slug for j in store.follow_up_jobs()] == [blocked.blocked.follow_up_slug]
    replay = engine.block("feat", CONFLICT)
    assert (replay.state, replay.blocked and replay.blocked.occurrences) == (State.BLOCKED, 2)
    assert engine.start_remediation("feat").blocked is not None
    fixed = "b" * 40
    resumed = engine.resume("feat", new_sha=fixed, force_reason="fixed by hand")
    assert (resumed.state, resumed.candidate.key.sha, resumed.blocked) == (State.RETRY, fixed, None)
    old = store.blocked_record(CandidateKey("feat", "feat", SHA))
    assert old is not None
    assert old.status == "resumed"
    engine.start_apply("feat", owner="w2")
    done = engine.integrate("feat", main_sha=MAIN)
    assert done.state is State.INTEGRATED
    assert store.leases() == []
    entries = store.history(done.candidate.id)
    assert [(t.source, t.event, t.dest) for t in entries] == [
        (None, Event.SUBMIT, State.PENDING),
        (State.PENDING, Event.START_APPLY, State.APPLYING),
        (State.APPLYING, Event.BLOCK, State.BLOCKED),
        (State.BLOCKED, Event.BLOCK, State.BLOCKED),
        (State.BLOCKED, Event.START_REMEDIATION, State.REMEDIATING),
        (State.REMEDIATING, Event.RESUME, State.RETRY),
        (State.RETRY, Event.START_APPLY, State.APPLYING),
        (State.APPLYING, Event.INTEGRATE, State.INTEGRATED),
    ]
    assert [t.sha for t in entries][-3:] == [fixed] * 3
    assert engine.verify() == []


def test_recover_interrupts_and_releases_the_expired_lease(store: SQLiteStore) -> None:
    """recover requeues an expired apply twice, then interrupt blocks it and frees the lease."""
    engine = engine_on(store, lease_ttl=timedelta(0))
    drive(engine, State.APPLYING)
    for _ in range(2):
        [requeued] = engine.recover(MAIN)
        assert requeued.state is State.PENDING
        assert store.leases() == []
        engine.start_apply(requeued.candidate.key.slug, owner="w1")
    [outcome] = engine.recover(MAIN)
    assert outcome.state is State.BLOCKED
    assert outcome.transition is not None
    assert outcome.transition.event is Event.INTERRUPT
    assert outcome.blocked is not None
    assert outcome.blocked.reason is Reason.APPLY_INTERRUPTED
    assert store.leases() == []


def test_the_lease_is_exclusive(store: SQLiteStore) -> None:
    """A second start_apply while the lease is held is refused and writes nothing."""
    engine = engine_on(store)
    drive(engine, State.APPLYING, "one")
    engine.submit(CandidateKey("two", "two", SHA))
    before = snapshot(store)
    with pytest.raises(LeaseHeld):
        engine.start_apply("two", owner="w2")
    assert snapshot(store) == before


@pytest.mark.parametrize("state", list(State))
def test_illegal_moves_write_nothing(store: SQLiteStore, state: State) -> None:
    """Every event the table forbids in a state is refused, and nothing is written."""
    engine = engine_on(store)
    drive(engine, state)
    calls: dict[Event, Callable[[], Outcome]] = {
        Event.START_APPLY: lambda: engine.start_apply("feat", owner="w9"),
        Event.INTEGRATE: lambda: engine.integrate("feat", main_sha=MAIN),
        Event.BLOCK: lambda: engine.block("feat", CONFLICT),
        Event.INTERRUPT: lambda: engine.fire(Request(Event.INTERRUPT, "feat", report=FAILED)),
        Event.START_REMEDIATION: lambda: engine.start_remediation("feat"),
        Event.RESUME: lambda: engine.resume("feat", force_reason="test"),
    }
    forbidden = [e for e in calls if TABLE.destination(state, e) is None]
    assert forbidden, f"{state} allows every event"
    before = snapshot(store)
    for event in forbidden:
        with pytest.raises(IllegalTransition) as err:
            calls[event]()
        assert (err.value.state, err.value.event) == (state, event)
        assert "\n" not in str(err.value)
    assert snapshot(store) == before


def test_a_request_missing_its_payload_is_refused(store: SQLiteStore) -> None:
    """A generic fire without what the rule's effects consume writes nothing."""
    engine = engine_on(store)
    drive(engine, State.PENDING)
    before = snapshot(store)
    with pytest.raises(InvalidInput, match="lease owner"):
        engine.fire(Request(Event.START_APPLY, "feat"))
    with pytest.raises(InvalidInput, match="keeps the sha"):
        engine.fire(Request(Event.START_APPLY, "feat", owner="w", new_sha="c" * 40))
    assert snapshot(store) == before


def test_batch_is_all_or_nothing(store: SQLiteStore) -> None:
    """A batch whose last move is illegal writes none of its moves, and runs no hook."""
    seen: list[Outcome] = []
    engine = engine_on(store, hooks=[on_outcome(seen.append)])
    before = snapshot(store)

    def doomed() -> None:
        with engine.batch() as batch:
            batch.submit(CandidateKey("one", "one", SHA))
            batch.start_apply("one", owner="w")
            batch.start_remediation("one")

    with pytest.raises(IllegalTransition):
        doomed()
    assert snapshot(store) == before
    assert seen == []
    with engine.batch() as batch:
        batch.submit(CandidateKey("one", "one", SHA))
        batch.start_apply("one", owner="w")
    assert [o.state for o in batch.outcomes] == [State.PENDING, State.APPLYING]
    assert [o.state for o in seen] == [State.PENDING, State.APPLYING]


# -- hooks -------------------------------------------------------------------


def test_hooks_get_what_they_subscribed_to(store: SQLiteStore) -> None:
    """on_enter fires on entering only, on_event on every call of the event, a plain hook always."""
    entered: list[int] = []
    blocks: list[int] = []
    everything: list[Event | None] = []

    class Plain:
        def after_commit(self, outcome: Outcome) -> Outcome:
            everything.append(outcome.transition and outcome.transition.event)
            return outcome

    engine = engine_on(
        store,
        hooks=[
            on_enter(State.BLOCKED, lambda o: entered.append(o.candidate.seq)),
            on_event(Event.BLOCK, lambda o: blocks.append(o.candidate.seq)),
            Plain(),
        ],
    )
    drive(engine, State.BLOCKED)
    engine.block("feat", CONFLICT)  # a replay: the state does not change
    engine.submit(CandidateKey("feat", "feat", SHA))  # a no-op
    assert entered == [3]
    assert blocks == [3, 4]
    assert everything == [
        Event.SUBMIT,
        Event.START_APPLY,
        Event.BLOCK,
        Event.BLOCK,
        None,
    ]


@pytest.mark.parametrize(
    ("hook", "words"),
    [
        (42, "give a callable"),
        (lambda: None, "take exactly the outcome"),
        (lambda a, b: None, "take exactly the outcome"),
        (type("NoCall", (), {"after_commit": 3})(), "give a callable"),
    ],
    ids=["number", "no-argument", "two-arguments", "after-commit-not-callable"],
)
def test_a_hook_that_cannot_be_called_is_refused_at_construction(
    store: SQLiteStore, hook: object, words: str
) -> None:
    """A hook that could not take the outcome is refused when the Engine is built."""
    with pytest.raises(InvalidInput, match=words) as err:
        engine_on(store, hooks=[hook])
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidInput):
        on_enter(State.BLOCKED, hook)  # type: ignore[arg-type]


def test_a_failing_hook_never_hides_the_committed_move(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises is reported beside the outcome; later hooks, guidance, log line run."""
    later: list[State] = []

    def broken(outcome: Outcome) -> None:
        raise RuntimeError("disk full\nsecond line")

    engine = engine_on(
        store,
        guide=Guide(),
        hooks=[
            on_enter(State.BLOCKED, broken, name="broken"),
            on_outcome(lambda o: later.append(o.state)),
        ],
    )
    drive(engine, State.APPLYING)
    with caplog.at_level(logging.INFO, logger="mergegate"):
        outcome = engine.block("feat", CONFLICT)
    assert outcome.state is State.BLOCKED
    assert store.candidate("feat") == outcome.candidate
    [failure] = outcome.hook_errors
    assert (failure.hook, failure.error, failure.message) == (
        "broken",
        "RuntimeError",
        "disk full second line",
    )
    assert later == [State.PENDING, State.APPLYING, State.BLOCKED]
    assert outcome.guidance is not None
    [hook_log] = [r for r in caplog.records if r.name == "mergegate.hooks"]
    assert hook_log.exc_info is not None
    assert "the move stands" in hook_log.getMessage()
    lines = [r.getMessage() for r in caplog.records if r.name == "mergegate.transitions"]
    [line] = [line for line in lines if "event=integration_blocked" in line]
    assert line.endswith(" hook_errors=1")


def test_a_hook_returning_something_else_is_a_reported_failure(store: SQLiteStore) -> None:
    """A hook must return an Outcome or None; anything else is reported, not passed on."""
    engine = engine_on(store, hooks=[on_outcome(lambda o: "done")])  # type: ignore[arg-type,return-value]
    outcome = engine.submit(CandidateKey("feat", "feat", SHA))
    assert outcome.state is State.PENDING
    assert [f.error for f in outcome.hook_errors] == ["TypeError"]


# -- idempotency keys are requests -------------------------------------------


def test_same_key_same_request_returns_the_first_entry(store: SQLiteStore) -> None:
    """A retried call with its key returns the entry the first call wrote, and moves once."""
    engine = engine_on(store)
    drive(engine, State.PENDING)
    first = engine.start_apply("feat", owner="w", idempotency_key="job-1")
    again = engine.start_apply("feat", owner="w", idempotency_key="job-1")
    assert again.transition == first.transition
    assert len(store.history(first.candidate.id)) == 2


@pytest.mark.parametrize(
    ("state", "first", "second"),
    [
        (
            State.PENDING,
            lambda e: e.start_apply("feat", owner="w1", idempotency_key="k"),
            lambda e: e.start_apply("feat", owner="w2", idempotency_key="k"),
        ),
        (
            State.APPLYING,
            lambda e: e.block("feat", CONFLICT, idempotency_key="k"),
            lambda e: e.block("feat", FAILED, idempotency_key="k"),
        ),
        (
            State.APPLYING,
            lambda e: e.integrate("feat", main_sha=MAIN, idempotency_key="k"),
            lambda e: e.integrate("feat", main_sha="8" * 40, idempotency_key="k"),
        ),
        (
            State.REMEDIATING,
            lambda e: e.resume("feat", new_sha="b" * 40, force_reason="x", idempotency_key="k"),
            lambda e: e.resume("feat", new_sha="c" * 40, force_reason="x", idempotency_key="k"),
        ),
        (
            State.BLOCKED,
            lambda e: e.start_remediation("feat", idempotency_key="k"),
            lambda e: e.block("feat", CONFLICT, idempotency_key="k"),
        ),
    ],
    ids=["other-owner", "other-report", "other-main", "other-sha", "other-event"],
)
def test_same_key_other_request_is_refused(
    store: SQLiteStore,
    state: State,
    first: Callable[[Engine], Outcome],
    second: Callable[[Engine], Outcome],
) -> None:
    """Reusing a key with another payload is an error, one line, and writes nothing."""
    engine = engine_on(store)
    drive(engine, state)
    first(engine)
    before = snapshot(store)
    with pytest.raises(IdempotencyKeyReused) as err:
        second(engine)
    assert "\n" not in str(err.value)
    assert "'k'" in str(err.value)
    assert snapshot(store) == before


def _store_keeps_digests(tmp_path: Path) -> bool:
    probe = Engine(SQLiteStore(tmp_path / "probe.sqlite3"))
    probe.submit(CandidateKey("probe", "probe", SHA))
    entry = probe.start_apply("probe", owner="w", idempotency_key="k").transition
    return entry is not None and entry.request_digest is not None


def test_same_key_other_evidence_is_refused(store: SQLiteStore, tmp_path: Path) -> None:
    """Two blocked reports that differ only in their evidence are different requests."""
    if not _store_keeps_digests(tmp_path):
        pytest.skip("this store does not persist Transition.request_digest yet")
    engine = engine_on(store)
    drive(engine, State.APPLYING)
    engine.block("feat", CONFLICT, idempotency_key="k")
    other = BlockedReport(Reason.MERGE_CONFLICT, MAIN, Evidence(conflicted_paths=("src/b.py",)))
    with pytest.raises(IdempotencyKeyReused):
        engine.block("feat", other, idempotency_key="k")


def test_request_digest_is_stable_and_tells_payloads_apart() -> None:
    """Equal requests give equal digests; any payload difference changes it; the key does not."""
    one = Request(Event.BLOCK, "feat", report=CONFLICT, idempotency_key="a", expected_seq=2)
    same = Request(Event.BLOCK, "feat", report=CONFLICT, idempotency_key="b")
    assert one.digest() == same.digest()
    assert one.digest().startswith("sha256:")
    other = BlockedReport(Reason.MERGE_CONFLICT, MAIN, Evidence(conflicted_paths=("src/b.py",)))
    assert Request(Event.BLOCK, "feat", report=other).digest() != one.digest()
    assert Request(Event.INTERRUPT, "feat", report=CONFLICT).digest() != one.digest()
