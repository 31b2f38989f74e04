"""The Engine's fast path: which calls take it, and that a decline writes nothing.

PostgreSQL is the store that offers ``move`` (one round trip per plain move);
SQLite takes every call through the Engine's one path, which these cases also
check where they take ``store``. The agreement machine
(``test_store_agreement.py``) compares the two paths over random calls; these
cases pin down the contract a store's ``move`` keeps (docs/design.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from mergegate.persistence.contract import ManualClock, conflict_report
from mergegate.statemachine import (
    CandidateKey,
    CandidateNotFound,
    ConcurrencyConflict,
    DuplicateCandidate,
    Engine,
    IllegalTransition,
    InvalidInput,
    LeaseHeld,
    State,
    Store,
)
from mergegate.statemachine.extension import Move, Moved

SHA = "a" * 40


class Counting:
    """A real store whose ``move`` is counted: accepted and declined calls."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.accepted: list[str] = []
        self.declined: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def move(self, move: Move) -> Moved | None:
        done: Moved | None = self._store.move(move)  # type: ignore[attr-defined]
        (self.accepted if done is not None else self.declined).append(move.event.value)
        return done


class General:
    """A real store that offers only the Store protocol: no ``move``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "move":
            raise AttributeError(name)
        return getattr(self._store, name)


@pytest.fixture
def counted(pg: Store) -> Counting:
    """A PostgreSQL store (the one that offers ``move``), its fast-path calls counted."""
    return Counting(pg)


def _snapshot(store: Store) -> tuple[object, ...]:
    return (store.candidates(), list(store.log()), store.blocked_records(), store.leases())


def test_plain_moves_take_the_fast_path(counted: Counting) -> None:
    """Submit, start_apply and integrate are each one accepted store.move call."""
    engine = Engine(counted, clock=ManualClock())  # type: ignore[arg-type]
    engine.submit(CandidateKey("feat", "feat", SHA))
    engine.start_apply("feat", owner="w1")
    done = engine.integrate("feat", main_sha="b" * 40)
    assert counted.accepted == ["submit", "start_apply", "integrate"]
    assert counted.declined == []
    assert done.state is State.INTEGRATED
    assert [t.event.value for t in counted.history(done.candidate.id)] == [
        "submit",
        "start_apply",
        "integrate",
    ]
    assert counted.leases() == []
    assert engine.verify() == []


def test_a_move_that_carries_a_report_never_asks_the_store(counted: Counting) -> None:
    """A block goes straight to the general path: store.move is not called for it."""
    engine = Engine(counted, clock=ManualClock())  # type: ignore[arg-type]
    engine.submit(CandidateKey("feat", "feat", SHA))
    engine.start_apply("feat", owner="w1")
    blocked = engine.block("feat", conflict_report())
    assert blocked.state is State.BLOCKED
    assert blocked.blocked is not None
    assert counted.accepted == ["submit", "start_apply"]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda e: e.integrate("feat", main_sha="b" * 40), IllegalTransition),
        (lambda e: e.start_apply("feat", owner="w2", expected_seq=0), ConcurrencyConflict),
        (lambda e: e.start_apply("feat", owner="w2"), LeaseHeld),
        (lambda e: e.submit(CandidateKey("feat", "feat", "c" * 40)), DuplicateCandidate),
    ],
    ids=["illegal", "stale", "lease-held", "duplicate"],
)
def test_a_declined_move_writes_nothing_and_raises_the_general_error(
    counted: Counting, call: Any, error: type[Exception]
) -> None:
    """The store declines, nothing is written, and the general path raises its usual error."""
    engine = Engine(counted, clock=ManualClock())  # type: ignore[arg-type]
    engine.submit(CandidateKey("feat", "feat", SHA))
    engine.submit(CandidateKey("other", "other", SHA))
    engine.start_apply("other", owner="w1")  # holds the lease
    before = _snapshot(counted)
    counted.accepted.clear()
    counted.declined.clear()
    with pytest.raises(error):
        call(engine)
    assert _snapshot(counted) == before
    assert counted.accepted == []


def test_a_hostile_slug_is_refused_before_the_store_sees_it(counted: Counting) -> None:
    """A slug that is not one raises InvalidInput; store.move is never called."""
    engine = Engine(counted, clock=ManualClock())  # type: ignore[arg-type]
    before = _snapshot(counted)
    with pytest.raises(InvalidInput, match="slug"):
        engine.integrate("../../etc", main_sha="b" * 40)
    assert counted.accepted == counted.declined == []
    assert _snapshot(counted) == before


def test_fast_path_off_and_a_store_without_move_use_the_general_path(store: Store) -> None:
    """fast_path=False never calls move, and a store without move works the same way."""
    counted = Counting(store)
    off = Engine(counted, clock=ManualClock(), fast_path=False)  # type: ignore[arg-type]
    off.submit(CandidateKey("feat", "feat", SHA))
    off.start_apply("feat", owner="w1")
    assert counted.accepted == counted.declined == []
    plain = Engine(General(store), clock=ManualClock())  # type: ignore[arg-type]
    done = plain.integrate("feat", main_sha="b" * 40)
    assert done.state is State.INTEGRATED
    assert [t.event.value for t in store.history(done.candidate.id)] == [
        "submit",
        "start_apply",
        "integrate",
    ]


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda e, a: e.start_apply("missing", owner="w1", actor=a), CandidateNotFound),
        (lambda e, a: e.withdraw("missing", why="gone", actor=a), CandidateNotFound),
        (lambda e, a: e.integrate("feat", main_sha="b" * 40, actor=a), IllegalTransition),
        (
            lambda e, a: e.start_apply("feat", owner="w1", actor=a, expected_seq=7),
            ConcurrencyConflict,
        ),
        (lambda e, a: e.start_apply("feat", owner="w1", actor=a), InvalidInput),
    ],
    ids=["missing", "missing-withdraw", "illegal", "stale", "legal"],
)
def test_a_bad_actor_meets_the_same_error_on_either_path(
    store: Store, fast: bool, call: Any, error: type[Exception]
) -> None:
    """An actor that is not UTF-8 text raises the general path's error, fast path or not."""
    engine = Engine(store, clock=ManualClock(), fast_path=fast)
    engine.submit(CandidateKey("feat", "feat", SHA))
    before = _snapshot(store)
    with pytest.raises(error):
        call(engine, "bad\udc80actor")
    assert _snapshot(store) == before
