"""Fixtures shared by the PostgreSQL store suites: a store and a plain connection on one schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from mergegate.persistence import PostgresStore


@pytest.fixture
def pg(pg_server: str, pg_schema: str) -> Iterator[PostgresStore]:
    """A store in a fresh schema."""
    opened = PostgresStore(pg_server, schema=pg_schema)
    yield opened
    opened.close()


@pytest.fixture
def admin(pg_server: str, pg_schema: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A plain autocommit connection looking at the same schema."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        yield conn
