"""Shared test configuration: Hypothesis profiles, the PostgreSQL test server, a
throw-away schema on it, and the one ``store`` fixture every suite builds stores with."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import Store

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The reachable server's URL; skips (fails under CI=true) when there is none."""
    url = os.environ.get("MERGEGATE_TEST_PG", DEFAULT_PG)
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
    """A fresh, empty schema on the test server; dropped with everything in it afterwards."""
    import psycopg
    from psycopg import sql

    name = f"mg_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_server: str, pg_schema: str) -> str:
    """A store URL (``--db`` for the CLI) naming ``pg_schema`` on the test server."""
    return f"{pg_server}{'&' if '?' in pg_server else '?'}schema={pg_schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend: a SQLite file, and a PostgreSQL schema."""
    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "store.sqlite3")
    else:
        from mergegate.persistence import PostgresStore

        server: str = request.getfixturevalue("pg_server")
        opened = PostgresStore(server, schema=request.getfixturevalue("pg_schema"))
    yield opened
    opened.close()


# Example counts come from these profiles only. A test whose examples cost much
# more than usual takes a fraction of the profile's count through
# ``tests/examples.py``, so HYPOTHESIS_PROFILE still scales it.
settings.register_profile(
    "default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
