"""Store fixtures: every contract test runs against each real backend.

PostgreSQL tests use the server named by ``MERGEGATE_TEST_PG``, each in a
throw-away schema that is dropped afterwards. Without a reachable server they
are skipped with one line, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import Store


@pytest.fixture
def pg_schema(pg_server: str) -> Iterator[str]:
    """A fresh schema name on the test server; the schema is dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"mg_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend."""
    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "store.sqlite3")
    else:
        from mergegate.persistence import PostgresStore

        opened = PostgresStore(pg_server_url(request), schema=request.getfixturevalue("pg_schema"))
    yield opened
    opened.close()


def pg_server_url(request: pytest.FixtureRequest) -> str:
    """The test server, resolved through the fixture so it skips or fails as it should."""
    url: str = request.getfixturevalue("pg_server")
    return url
