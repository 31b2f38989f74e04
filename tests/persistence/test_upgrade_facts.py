"""Schema version 13: facts once written into notes are read from their own columns after it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.persistence.contract import ManualClock
from mergegate.persistence.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from mergegate.statemachine import Engine, Event, Lease, Reason, State, Store

STAMP = "2026-01-01T12:00:00.000000Z"
SHA, MAIN = "a" * 40, "b" * 40
# (slug, state, log) as version-12 code wrote them: facts in the notes only. "link"
# applies in a chain of owner c1; "done" was integrated at MAIN; "again" was
# interrupted twice (its integrator stopped) and is queued again.
ROWS = (
    ("link", "applying", [("submit", None), ("start_apply", "lease owner=c1")]),
    ("done", "integrated", [("submit", None), ("start_apply", "lease owner=w1"),
                            ("integrate", f"main={MAIN}")]),
    ("again", "pending", [("submit", None), ("start_apply", "lease owner=w1"),
                          ("requeue", "interrupted: SIGTERM (stopped by its operator)"),
                          ("start_apply", "lease owner=w1"),
                          ("requeue", "interrupted: the apply lease held by w1 expired")]),
)  # fmt: skip
_STATES = {"submit": "pending", "start_apply": "applying", "integrate": "integrated"}


def _fill_version_twelve(execute: Callable[..., object], mark: str, pg: bool) -> None:
    """The schema of versions 1 to 12 and the rows of ROWS, written with ``execute``."""
    migrations = POSTGRES_MIGRATIONS if pg else SQLITE_MIGRATIONS
    time = "timestamptz" if pg else "TEXT"
    execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        f"applied_at {time} NOT NULL)"
    )
    for migration in migrations[:12]:
        assert migration.version <= 12
        for statement in migration.statements:
            execute(statement)
        execute(
            f"INSERT INTO schema_migrations VALUES ({mark}, {mark}, {mark})",
            (migration.version, migration.name, STAMP),
        )
    yes, no = ("TRUE", "FALSE") if pg else ("1", "0")
    for number, (slug, state, log) in enumerate(ROWS, start=1):
        active = yes if state != "integrated" else no
        queued = yes if state == "pending" else no
        execute(
            "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at, "
            f"active, queued, queue_pos) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, "
            f"{mark}, {active}, {queued}, {number})",
            (slug, slug, SHA, state, len(log), STAMP, STAMP),
        )
        source = None
        for seq, (event, note) in enumerate(log, start=1):
            dest = _STATES.get(event, "pending")
            execute(
                "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at, "
                f"reason) VALUES ({', '.join([mark] * 9)})",
                (number, seq, event, source, dest, SHA, "old", STAMP, note),
            )
            source = dest
    execute(
        f"INSERT INTO leases VALUES ('main', 'c1', NULL, {mark}, '2026-01-01T12:10:00Z')",
        (STAMP,),
    )


def _check_facts(store: Store) -> None:
    assert store.schema_versions()[-1] >= 13  # type: ignore[attr-defined]
    link, done, again = (store.candidate(slug) for slug in ("link", "done", "again"))
    assert link is not None
    assert done is not None
    assert again is not None
    assert store.history(link.id)[-1].lease_owner == "c1"
    assert store.history(done.id)[-1].main_sha == MAIN
    assert [t.interrupted for t in store.history(again.id) if t.event is Event.REQUEUE] == [
        "SIGTERM (stopped by its operator)",
        "the apply lease held by w1 expired",
    ]
    later = datetime(2026, 1, 1, 13, tzinfo=UTC)
    engine = Engine(store, clock=ManualClock(later), lease_ttl=timedelta(minutes=1))
    (lease,) = store.leases()
    assert [c.key.slug for c in engine.chain_links(lease)] == ["link"]
    # The two interruptions the notes recorded count: the third in a row blocks.
    recovered = engine.recover(MAIN)
    assert [(o.candidate.key.slug, o.state) for o in recovered] == [("link", State.PENDING)]
    engine.start_apply("again", owner="w2")
    third = engine.fire(
        engine.interruption(
            engine.get("again"),
            MAIN,
            Lease("main", "w2", again.id, later, later),
            "stopped a third time",
        )
    )
    assert third.state is State.BLOCKED
    assert third.blocked is not None
    assert third.blocked.reason is Reason.APPLY_INTERRUPTED
    assert engine.verify() == []


def test_a_sqlite_file_of_version_twelve_reads_its_notes_as_facts(tmp_path: Path) -> None:
    """Migration 13 fills lease_owner, main_sha and interrupted from old notes (SQLite)."""
    path = tmp_path / "v12.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")

    def execute(statement: str, params: tuple[Any, ...] = ()) -> None:
        conn.execute(statement, params)

    _fill_version_twelve(execute, "?", pg=False)
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    try:
        _check_facts(store)
    finally:
        store.close()


@contextmanager
def _pg(server: str, schema: str) -> Iterator[Any]:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        yield conn


@pytest.mark.postgres
def test_a_postgres_schema_of_version_twelve_reads_its_notes_as_facts(
    pg_server: str, pg_schema: str
) -> None:
    """Migration 13 fills the columns and replaces the server-side move (PostgreSQL)."""
    from mergegate.persistence import PostgresStore

    with _pg(pg_server, pg_schema) as conn:
        _fill_version_twelve(lambda q, p=None: conn.execute(q, p), "%s", pg=True)
    store = PostgresStore(pg_server, schema=pg_schema)
    try:
        _check_facts(store)
        with _pg(pg_server, pg_schema) as conn:
            functions = conn.execute(
                "SELECT count(*) FROM pg_proc WHERE proname = 'mergegate_move' "
                "AND pronamespace = current_schema()::regnamespace"
            ).fetchone()
        assert functions == (1,)  # the old signature was dropped, not left as an overload
    finally:
        store.close()
