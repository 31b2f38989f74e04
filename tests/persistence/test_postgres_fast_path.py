"""The fast path on PostgreSQL: one round trip per plain move, and a decline that writes nothing.

Round trips are counted in libpq's own trace of the store's session: one is
each time the client, having sent messages, turns to read the server's answer
(a pipeline's reads count too). A session's first call of a statement also
prepares it (one more exchange, once), so the counts are taken on a warm session.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq, sql

from mergegate.persistence import PostgresStore
from mergegate.persistence.contract import ManualClock
from mergegate.statemachine import (
    TABLE,
    CandidateKey,
    Engine,
    Event,
    LeaseHeld,
    MergegateError,
    State,
)
from mergegate.statemachine.extension import Move

pytestmark = pytest.mark.postgres

A = CandidateKey("feat-a", "feat-a", "a" * 40)
B = CandidateKey("feat-b", "feat-b", "b" * 40)
MAIN = "c" * 40
_TABLES = ("candidates", "transitions", "leases", "integration_blocked_outcomes")


def _tables(admin: psycopg.Connection[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the moves touch, in a fixed order: equal before and after means nothing written."""
    return {
        t: admin.execute(
            sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(t))
        ).fetchall()
        for t in _TABLES
    }


def _traced(
    store: PostgresStore, call: Callable[[], object], trace: Path
) -> tuple[tuple[Any, ...], int, list[str]]:
    """What ``call()`` returned or raised, its round trips, and the server's command tags."""
    pgconn = store._conn.pgconn
    with trace.open("w") as f:
        pgconn.trace(f.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            outcome: Any = call()
            result: tuple[Any, ...] = ("returned", outcome.candidate, outcome.transition)
        except MergegateError as err:
            result = ("raised", type(err), str(err))
        finally:
            pgconn.untrace()
    sent = [line.split("\t") for line in trace.read_text().splitlines()]
    sides = [m[0] for m in sent if m[0] in ("F", "B")]
    trips = sum(1 for a, b in pairwise(sides) if (a, b) == ("F", "B"))
    done = [m[3].strip() for m in sent if len(m) > 3 and m[0] == "B" and m[2] == "CommandComplete"]
    return result, trips, done


def _warm(store: PostgresStore) -> None:
    """One candidate through the plain moves, so the session has prepared their statements."""
    engine = Engine(store, actor="w", clock=ManualClock(), lease_name="warm")
    warm = CandidateKey("warm", "warm", "e" * 40)
    engine.submit(warm)
    engine.start_apply(warm.slug, owner="w")
    engine.integrate(warm.slug, main_sha=MAIN)


@pytest.mark.parametrize("fast", [True, False])
def test_plain_moves_take_one_round_trip_each(
    pg: PostgresStore, tmp_path: Path, fast: bool
) -> None:
    """submit, start_apply and integrate: one round trip each on the fast path, more without."""
    engine = Engine(pg, actor="t", clock=ManualClock(), fast_path=fast)
    _warm(pg)
    trace = tmp_path / "trace"
    counts = [
        _traced(pg, lambda: engine.submit(A), trace)[1],
        _traced(pg, lambda: engine.start_apply(A.slug, owner="o"), trace)[1],
        _traced(pg, lambda: engine.integrate(A.slug, main_sha=MAIN), trace)[1],
    ]
    moved = pg.candidate(A.slug)
    assert moved is not None
    assert moved.state is State.INTEGRATED
    if fast:
        assert counts == [1, 1, 1]
    else:
        assert min(counts) > 1


def _held_lease(engine: Engine) -> Callable[[Engine], object]:
    engine.submit(A)
    engine.submit(B)
    engine.start_apply(A.slug, owner="one")
    return lambda e: e.start_apply(B.slug, owner="two")


def _stale_seq(engine: Engine) -> Callable[[Engine], object]:
    engine.submit(A)
    return lambda e: e.start_apply(A.slug, owner="one", expected_seq=0)


def _illegal_event(engine: Engine) -> Callable[[Engine], object]:
    engine.submit(A)
    return lambda e: e.integrate(A.slug, main_sha=MAIN)


def _duplicate_submit(engine: Engine) -> Callable[[Engine], object]:
    engine.submit(A)
    return lambda e: e.submit(CandidateKey(A.slug, A.branch, "d" * 40))


def _same_submit_again(engine: Engine) -> Callable[[Engine], object]:
    engine.submit(A)
    return lambda e: e.submit(A)


# Each sets the scene, then names the call the fast path must decline, and the Move it sends.
Scene = tuple[Callable[[Engine], Callable[[Engine], object]], Event, str, dict[str, Any]]
SCENES: dict[str, Scene] = {
    "held lease": (_held_lease, Event.START_APPLY, B.slug, {"owner": "two"}),
    "stale expected_seq": (_stale_seq, Event.START_APPLY, A.slug, {"owner": "one", "seq": 0}),
    "illegal event": (_illegal_event, Event.INTEGRATE, A.slug, {}),
    "duplicate submit": (_duplicate_submit, Event.SUBMIT, A.slug, {"key": A}),
    "same submit again": (_same_submit_again, Event.SUBMIT, A.slug, {"key": A}),
}


def _move(clock: ManualClock, event: Event, slug: str, facts: dict[str, Any]) -> Move:
    """The Move the Engine would send for ``event`` on ``slug``, built from the lifecycle table."""
    at = clock()
    owner = facts.get("owner")
    return Move(
        event,
        slug,
        TABLE.steps(event),
        at,
        "t",
        "main",
        key=facts.get("key"),
        expected_seq=facts.get("seq"),
        owner=owner,
        expires_at=None if owner is None else at + timedelta(minutes=10),
    )


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_declined_move_writes_nothing(
    pg: PostgresStore, admin: psycopg.Connection[tuple[Any, ...]], scene: str
) -> None:
    """mergegate_move declines (no row) every case but the happy one, and writes nothing."""
    setup, event, slug, facts = SCENES[scene]
    clock = ManualClock()
    setup(Engine(pg, actor="t", clock=clock))
    before = _tables(admin)
    assert pg.move(_move(clock, event, slug, facts)) is None
    assert _tables(admin) == before


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_declined_move_answers_as_the_general_path(
    pg: PostgresStore, admin: psycopg.Connection[tuple[Any, ...]], tmp_path: Path, scene: str
) -> None:
    """The Engine's declined fast move answers as the general path does, and writes nothing."""
    setup, *_ = SCENES[scene]
    clock = ManualClock()
    call = setup(Engine(pg, actor="t", clock=clock))
    fast, general = (Engine(pg, actor="t", clock=clock, fast_path=f) for f in (True, False))
    _warm(pg)
    before = _tables(admin)
    fast_result, fast_trips, fast_done = _traced(pg, lambda: call(fast), tmp_path / "fast")
    general_result, general_trips, general_done = _traced(
        pg, lambda: call(general), tmp_path / "general"
    )
    assert fast_result == general_result
    # First the call of mergegate_move, answered with no row (declined), then the general path.
    assert fast_done[0] == '"SELECT 0"'
    assert general_done[0] != '"SELECT 0"'
    assert fast_trips > general_trips
    assert _tables(admin) == before


def test_a_refused_move_keeps_the_sessions_prepared_statements(pg: PostgresStore) -> None:
    """LeaseHeld on the general path rolls back without psycopg's DEALLOCATE ALL."""
    engine = Engine(pg, fast_path=False)
    for n in range(7):  # psycopg prepares a statement on its fifth run
        engine.submit(CandidateKey(f"c{n}", f"c{n}", "a" * 40))
    engine.start_apply("c0", owner="w1")
    conn = pg._conn
    prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert prepared is not None
    assert prepared[0] > 0
    with pytest.raises(LeaseHeld):
        engine.start_apply("c1", owner="w2")
    after = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert after == prepared
    assert engine.integrate("c0", main_sha="b" * 40).state is State.INTEGRATED
    assert engine.start_apply("c1", owner="w2").state is State.APPLYING
