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

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    """The server the PostgreSQL tests use."""
    return os.environ.get("MERGEGATE_TEST_PG", DEFAULT_PG)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The reachable server's URL; skips (fails under CI=true) when there is none."""
    url = pg_url()
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        reason = f"no PostgreSQL at MERGEGATE_TEST_PG={url}: {first}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    return url


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
