"""The asyncio facade under concurrency: many tasks, one queue, no duplicate and no lost move."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    AsyncEngine,
    CandidateKey,
    Engine,
    Event,
    LeaseHeld,
    State,
)

#: PostgreSQL's change feed shows nothing past the cluster's oldest running write
#: transaction (persistence/feed.py), however unrelated, so these run after the
#: parallel phase of CI, alone (tox.ini, marker ``serial``).
pytestmark = pytest.mark.serial

MAIN = "f" * 40
TASKS = 12
CANDIDATES = 30


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens stores on one fresh database; closes them all after the test."""
    opened: list[Any] = []

    def open_one() -> Any:
        if request.param == "sqlite":
            store: Any = SQLiteStore(tmp_path / "aio.sqlite3")
        else:
            from mergegate.persistence import PostgresStore

            store = PostgresStore(
                request.getfixturevalue("pg_server"), schema=request.getfixturevalue("pg_schema")
            )
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def key(n: int) -> CandidateKey:
    """Candidate number ``n``."""
    return CandidateKey(f"c{n}", f"c{n}", f"{n:x}".rjust(40, "a"))


async def integrator(engine: AsyncEngine, owner: str, done: list[str]) -> None:
    """Take the queue's head and integrate it until the queue is empty, waiting on the feed."""
    while True:
        cursor = await engine.feed_head()
        try:
            started = await engine.start_next(owner=owner)
        except LeaseHeld:
            await engine.wait_for_change(cursor, 5.0)
            continue
        if started is None:
            return
        slug = started.candidate.key.slug
        await engine.integrate(slug, main_sha=MAIN, expected_seq=started.candidate.seq)
        done.append(slug)


def check_log(engine: Engine) -> None:
    """Every candidate integrated once, started once, and the log replays clean."""
    states = Counter(c.state for c in engine.store.candidates())
    assert states == Counter({State.INTEGRATED: CANDIDATES}), states
    starts = Counter(t.candidate_id for t in engine.store.log() if t.event is Event.START_APPLY)
    assert sorted(starts.values()) == [1] * CANDIDATES, starts
    assert engine.verify() == []


def test_many_tasks_drain_one_queue_through_one_facade(opener: Callable[[], Any]) -> None:
    """Tasks submit (with repeats) and integrate concurrently; each candidate lands once."""
    engine = Engine(opener(), actor="aio")
    facade = AsyncEngine(engine)

    async def scenario() -> list[str]:
        # Every key submitted twice, from different tasks: the repeat is a no-op.
        await asyncio.gather(*(facade.submit(key(n % CANDIDATES)) for n in range(2 * CANDIDATES)))
        done: list[str] = []
        await asyncio.gather(*(integrator(facade, f"w{i}", done) for i in range(TASKS)))
        return done

    done = asyncio.run(scenario())
    assert sorted(done) == sorted(f"c{n}" for n in range(CANDIDATES)), Counter(done)
    check_log(engine)


def test_facades_over_separate_stores_share_one_queue(opener: Callable[[], Any]) -> None:
    """Several facades, each over its own store on one database, never start one twice."""
    engines = [Engine(opener(), actor=f"aio{i}") for i in range(3)]
    facades = [AsyncEngine(e) for e in engines]

    async def scenario() -> list[str]:
        await asyncio.gather(
            *(facades[n % 3].submit(key(n)) for n in range(CANDIDATES)),
        )
        done: list[str] = []
        await asyncio.gather(
            *(integrator(facades[i % 3], f"w{i}", done) for i in range(TASKS)),
        )
        return done

    done = asyncio.run(scenario())
    assert sorted(done) == sorted(f"c{n}" for n in range(CANDIDATES)), Counter(done)
    check_log(engines[0])


def test_the_facade_reads_the_queue_and_the_feed(opener: Callable[[], Any]) -> None:
    """queue(), changes() and the guarantees' errors come through the facade unchanged."""
    facade = AsyncEngine(Engine(opener()))

    async def scenario() -> None:
        for n in range(3):
            await facade.submit(key(n))
        entries = await facade.queue()
        assert [(e.candidate.key.slug, e.position) for e in entries] == [
            ("c0", 1),
            ("c1", 2),
            ("c2", 3),
        ]
        changes = await facade.changes()
        while len(changes) < 3:
            # A shared PostgreSQL server's other transactions may hold the horizon back.
            woke = await facade.wait_for_change(changes[-1].cursor if changes else 0, 30.0)
            assert woke, f"the feed showed only {changes}"
            changes = await facade.changes()
        assert [c.key.slug for c in changes] == ["c0", "c1", "c2"]
        await facade.start_apply("c0", owner="a")
        with pytest.raises(LeaseHeld):
            await facade.start_apply("c1", owner="b")

    asyncio.run(scenario())


def test_a_cancelled_wait_frees_its_thread_so_asyncio_run_exits(opener: Callable[[], Any]) -> None:
    """A cancelled wait_for_change ends its thread: asyncio.run returns soon, not at 60 s."""
    facade = AsyncEngine(Engine(opener()))

    async def scenario() -> None:
        head = await facade.feed_head()
        waiter = asyncio.create_task(facade.wait_for_change(head, 60.0))
        await asyncio.sleep(0.3)  # in its thread, waiting
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    began = time.monotonic()
    asyncio.run(scenario())  # shuts the default executor down: joins the waiting thread
    took = time.monotonic() - began
    assert took < 20, f"asyncio.run waited {took:.1f} s for the cancelled wait's thread"
