"""A move that waited for another writer's lock is stamped after that writer's move."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine, Outcome, Store

SHA = "a" * 40


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two stores (two connections) on one fresh database of each backend."""
    stores: tuple[Store, Store]
    if request.param == "sqlite":
        path = tmp_path / "store.sqlite3"
        stores = (SQLiteStore(path), SQLiteStore(path))
    else:
        from mergegate.persistence import PostgresStore

        server: str = request.getfixturevalue("pg_server")
        schema: str = request.getfixturevalue("pg_schema")
        stores = (PostgresStore(server, schema=schema), PostgresStore(server, schema=schema))
    yield stores
    for store in stores:
        store.close()


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "general"])
def test_a_waiting_move_is_not_stamped_before_the_move_it_waited_for(
    two_sessions: tuple[Store, Store], fast: bool
) -> None:
    """History times follow seq order when a call waits on a writer that holds the candidate."""
    holder_store, waiter_store = two_sessions
    holder = Engine(holder_store)
    waiter = Engine(waiter_store, fast_path=fast)
    holder.submit(CandidateKey("feat", "feat", SHA))
    done: list[Outcome] = []
    with holder.batch() as batch:
        batch.tx.candidate("feat")  # holds the slug's lock (PostgreSQL; SQLite: the whole file)
        thread = threading.Thread(
            target=lambda: done.append(waiter.integrate("feat", main_sha="b" * 40))
        )
        thread.start()
        time.sleep(0.3)  # the waiter has fired its call and waits for the lock
        batch.start_apply("feat", owner="w1")
    thread.join(timeout=30)
    assert done, "the waiting integrate did not finish"
    times = [t.at for t in holder_store.history(done[0].candidate.id)]
    assert times == sorted(times)
