"""A database of schema version 1 (before the state flag columns) opens and keeps working."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mergegate.persistence import (
    SQLiteStore,
)
from mergegate.persistence.migrations import MIGRATIONS, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS
from mergegate.statemachine import (
    CandidateKey,
    DuplicateCandidate,
    Engine,
    State,
    Store,
)

STAMP = "2026-01-01T12:00:00.000000Z"
# (slug, state, log) as the version-1 code wrote them: a queued, an applying
# and an integrated candidate, each with a gap-free log.
ROWS = (
    ("queued", "pending", [(None, "submit", "pending")]),
    (
        "working",
        "applying",
        [(None, "submit", "pending"), ("pending", "start_apply", "applying")],
    ),
    (
        "done",
        "integrated",
        [
            (None, "submit", "pending"),
            ("pending", "start_apply", "applying"),
            ("applying", "integrate", "integrated"),
        ],
    ),
)


def _fill_version_one(execute: Callable[[str, tuple[Any, ...]], object], mark: str) -> None:
    """Create the version-1 schema and the rows of ROWS with ``execute`` (``mark``: placeholder)."""
    v1 = MIGRATIONS[0]
    assert v1.version == 1
    for statement in (SQLITE_MIGRATIONS if mark == "?" else POSTGRES_MIGRATIONS)[0].statements:
        execute(statement, ())
    execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        f"applied_at {'TEXT' if mark == '?' else 'timestamptz'} NOT NULL)",
        (),
    )
    execute(f"INSERT INTO schema_migrations VALUES (1, 'initial', {mark})", (STAMP,))
    p = ", ".join([mark] * 7)
    for number, (slug, state, log) in enumerate(ROWS, start=1):
        execute(
            "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at) "
            f"VALUES ({p})",
            (slug, slug, "a" * 40, state, len(log), STAMP, STAMP),
        )
        for seq, (source, event, dest) in enumerate(log, start=1):
            execute(
                "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at) "
                f"VALUES ({p}, {mark})",
                (number, seq, event, source, dest, "a" * 40, "old", STAMP),
            )


def _check_upgraded(store: Store) -> None:
    assert store.schema_versions() == [m.version for m in MIGRATIONS]
    assert store.integrity_problems() == []
    engine = Engine(store)
    assert engine.verify() == []
    head = store.next_candidate()
    assert head is not None
    assert head.key.slug == "queued"
    # The integrated slug is free again; the applying one still holds its slug.
    assert engine.submit(CandidateKey("done", "done", "b" * 40)).candidate.state is State.PENDING
    with pytest.raises(DuplicateCandidate):
        engine.submit(CandidateKey("working", "working", "b" * 40))
    assert engine.integrate("working", main_sha="c" * 40).candidate.state is State.INTEGRATED
    assert [c.key.slug for c in store.candidates(State.PENDING)] == ["queued", "done"]
    assert engine.verify() == []


def test_sqlite_file_of_schema_version_one_is_upgraded(tmp_path: Path) -> None:
    """Opening a version-1 SQLite file adds the flags from each row's state and keeps it working."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    _fill_version_one(conn.execute, "?")
    conn.close()
    store = SQLiteStore(path)
    try:
        _check_upgraded(store)
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_schema_of_version_one_is_upgraded(pg_server: str, pg_schema: str) -> None:
    """Opening a version-1 PostgreSQL schema adds the flags from each row's state."""
    import psycopg
    from psycopg import sql

    from mergegate.persistence import PostgresStore

    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        _fill_version_one(conn.execute, "%s")
    store = PostgresStore(pg_server, schema=pg_schema)
    try:
        _check_upgraded(store)
    finally:
        store.close()


MAIN_V2 = Path(__file__).parent / "data" / "main-v2.sqlite3"


def test_sqlite_file_written_by_schema_version_two_is_upgraded(tmp_path: Path) -> None:
    """A file main wrote at version 2 opens at the latest version with its rows, lease included."""
    path = tmp_path / "v2.sqlite3"
    path.write_bytes(MAIN_V2.read_bytes())
    store = SQLiteStore(path)
    try:
        assert store.schema_versions() == [m.version for m in MIGRATIONS]
        assert store.integrity_problems() == []
        engine = Engine(store)
        assert engine.verify() == []
        states = {c.key.slug: c.state for c in store.candidates()}
        assert states == {
            "done": State.INTEGRATED,
            "stuck": State.BLOCKED,
            "working": State.APPLYING,
            "queued": State.PENDING,
        }
        assert [c.key.slug for c in store.candidates(State.BLOCKED)] == ["stuck"]
        (lease,) = store.leases()
        assert (lease.owner, lease.candidate_id) == ("w1", engine.get("working").id)
        # The rebuilt lease table is keyed by its name alone, and still refuses a second owner.
        conn = sqlite3.connect(path)
        try:
            ddl = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'leases'").fetchone()[0]
            indexes = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN "
                "('leases', 'candidates', 'transitions') ORDER BY name"
            ).fetchall()
        finally:
            conn.close()
        assert ddl.rstrip().endswith("WITHOUT ROWID")
        assert ("candidates_state",) not in indexes
        assert ("transitions_at",) not in indexes
        assert engine.integrate("working", main_sha="c" * 40).candidate.state is State.INTEGRATED
        assert store.leases() == []
        assert engine.start_apply("queued", owner="w2").candidate.state is State.APPLYING
        assert store.occurrences(store.blocked_records()[0].id)[0].seq == 3
        assert engine.verify() == []
        assert store.integrity_problems() == []
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_schema_of_version_two_is_upgraded(pg_server: str, pg_schema: str) -> None:
    """A version-2 PostgreSQL schema with a held lease opens at the latest version, lease kept."""
    import psycopg
    from psycopg import sql

    from mergegate.persistence import PostgresStore

    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        _fill_version_one(conn.execute, "%s")
        for statement in POSTGRES_MIGRATIONS[1].statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (2, 'flags', %s)", (STAMP,))
        conn.execute(
            "INSERT INTO leases VALUES ('main', 'w1', 2, %s, '2125-01-01T00:00:00Z')", (STAMP,)
        )
    store = PostgresStore(pg_server, schema=pg_schema)
    try:
        assert [(x.owner, x.candidate_id) for x in store.leases()] == [("w1", 2)]
        _check_upgraded(store)
        assert store.leases() == []
    finally:
        store.close()
