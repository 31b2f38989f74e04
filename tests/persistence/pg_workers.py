"""Process bodies for the PostgreSQL concurrency tests (spawned, so they live in a plain module).

Each worker opens its own store, so each is a separate PostgreSQL session, as
integrators on separate hosts would be. A worker reports what it did, or its
traceback, on a queue; the test asserts on the store afterwards.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from mergegate.persistence import PostgresStore
from mergegate.persistence.contract import conflict_report
from mergegate.statemachine import (
    ApplyResult,
    Blocked,
    BlockedReport,
    CandidateKey,
    Engine,
    Evidence,
    Integrated,
    LeaseHeld,
    Reason,
)

REPORT = conflict_report("src/app.py", main="0" * 40)
MAIN_TABLES = (
    "CREATE TABLE fake_main (sha text NOT NULL)",
    "CREATE TABLE main_moves (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "slug text NOT NULL, owner text NOT NULL, old text NOT NULL, new text NOT NULL)",
    "INSERT INTO fake_main VALUES ('" + "0" * 40 + "')",
)


def _run(queue: Queue[Any], name: str, body: Callable[[], Any]) -> None:
    try:
        queue.put((name, "ok", body()))
    except BaseException:
        queue.put((name, "error", traceback.format_exc()))


def block_worker(
    url: str,
    schema: str,
    slugs: list[str],
    todos: str | None,
    barriers: tuple[Barrier, Barrier],
    queue: Queue[Any],
    name: str,
) -> None:
    """For each slug, wait with the others, report REPORT once, and wait for the round's end."""

    def body() -> list[tuple[str, int]]:
        store = PostgresStore(url, schema=schema)
        engine = Engine(store, actor=name)
        if todos is not None:
            from mergegate.followups import Wiring, build_engine

            engine = build_engine(store, Wiring(Path(todos)), actor=name)
        start, done = barriers
        seqs = []
        try:
            for slug in slugs:
                start.wait(timeout=60)
                outcome = engine.block(slug, REPORT)
                assert outcome.transition is not None
                seqs.append((slug, outcome.transition.seq))
                done.wait(timeout=60)
        finally:
            store.close()
        return seqs

    _run(queue, name, body)


class TableMain:
    """An Applier whose ``main`` is one row, moved only by compare-and-swap.

    Every move is logged in ``main_moves`` by the same statement, so the log
    is exactly the list of times ``main`` moved.
    """

    def __init__(self, url: str, schema: str, owner: str) -> None:
        self.owner = owner
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))

    def main_sha(self) -> str:
        row = self.conn.execute("SELECT sha FROM fake_main").fetchone()
        assert row is not None
        return str(row[0])

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        old = self.main_sha()
        heartbeat()
        new = hashlib.sha1(f"{old}{key.sha}{key.slug}".encode()).hexdigest()  # noqa: S324
        heartbeat()
        moved = self.conn.execute(
            "WITH m AS (UPDATE fake_main SET sha = %s WHERE sha = %s RETURNING 1) "
            "INSERT INTO main_moves (slug, owner, old, new) SELECT %s, %s, %s, %s FROM m",
            (new, old, key.slug, self.owner, old, new),
        ).rowcount
        if moved != 1:
            evidence = Evidence(main_attempts=(old,))
            return Blocked(BlockedReport(Reason.MAIN_MOVED, old, evidence))
        return Integrated(new, old)

    def close(self) -> None:
        self.conn.close()


def integrator(url: str, schema: str, start: Barrier, queue: Queue[Any], name: str) -> None:
    """Loop ``apply_next`` until the queue is empty; wait politely while the lease is held."""

    def body() -> dict[str, int]:
        store = PostgresStore(url, schema=schema)
        applier = TableMain(url, schema, name)
        engine = Engine(store, actor=name)
        counts = {"applied": 0, "lease_waits": 0}
        deadline = time.monotonic() + 300
        try:
            start.wait(timeout=60)
            while time.monotonic() < deadline:
                try:
                    outcome = engine.apply_next(applier, owner=name)
                except LeaseHeld:
                    counts["lease_waits"] += 1
                    time.sleep(0.0005)
                    continue
                if outcome is None:
                    return counts
                counts["applied"] += 1
            raise TimeoutError(f"{name} still applying after 300 s")
        finally:
            applier.close()
            store.close()

    _run(queue, name, body)


def submit_worker(
    url: str, schema: str, keys: list[CandidateKey], barrier: Barrier, queue: Queue[Any], name: str
) -> None:
    """For each key, wait with the others and submit it; report what each submit returned."""

    def body() -> list[tuple[str, str | None]]:
        from mergegate.statemachine import DuplicateCandidate

        store = PostgresStore(url, schema=schema)
        engine = Engine(store, actor=name)
        seen: list[tuple[str, str | None]] = []
        try:
            for key in keys:
                barrier.wait(timeout=60)
                try:
                    outcome = engine.submit(key)
                except DuplicateCandidate:
                    seen.append((key.slug, "duplicate"))
                    continue
                seen.append((key.slug, "new" if outcome.transition is not None else "same"))
        finally:
            store.close()
        return seen

    _run(queue, name, body)


class _Hang:
    """An Applier that takes the lease, heartbeats once, then never returns."""

    def main_sha(self) -> str:
        return "0" * 40

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        heartbeat()
        time.sleep(3600)
        raise AssertionError("unreachable")


def hanging_integrator(url: str, schema: str, ttl: float, ready: Any) -> None:
    """Start applying the next candidate under a short lease, then hang until killed."""
    from datetime import timedelta

    store = PostgresStore(url, schema=schema)
    # renew_after=None: every beat renews, and the first renewal says "ready".
    engine = Engine(store, actor="doomed", lease_ttl=timedelta(seconds=ttl), renew_after=None)
    original = store.renew_lease

    def renew(name: str, owner: str, expires_at: Any) -> Any:
        lease = original(name, owner, expires_at)
        ready.set()
        return lease

    store.renew_lease = renew  # type: ignore[method-assign]
    engine.apply_next(_Hang(), owner="doomed")
