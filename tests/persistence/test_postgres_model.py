"""The core's stateful model test of the Engine, run on PostgreSQL.

The machine is the lead's ``EngineModelMachine``, unchanged; only the store
differs. Each example starts from empty tables in a throw-away schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import psycopg
import pytest
from psycopg import sql

from mergegate.persistence import PostgresStore
from mergegate.statemachine import Store
from mergegate.statemachine.testing.model import EngineModelMachine

from ..examples import fraction

pytestmark = pytest.mark.postgres

_TABLES = (
    "candidates, transitions, integration_blocked_outcomes, blocked_evidence, "
    "follow_up_outbox, leases"
)


class PostgresModelMachine(EngineModelMachine):
    """The model machine over a PostgreSQL schema emptied before each example."""

    server: ClassVar[tuple[str, str, psycopg.Connection[Any]] | None] = None

    def make_store(self) -> Store:
        assert self.server is not None, "the _server fixture did not run"
        url, schema, admin = self.server
        admin.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(schema, t) for t in _TABLES.split(", "))
            )
        )
        return PostgresStore(url, schema=schema)


@pytest.fixture(autouse=True)
def _server(pg_server: str, pg_schema: str) -> Iterator[None]:
    """Point the machine at a migrated throw-away schema for this test."""
    PostgresStore(pg_server, schema=pg_schema).close()
    with psycopg.connect(pg_server, autocommit=True) as admin:
        PostgresModelMachine.server = (pg_server, pg_schema, admin)
        yield
        PostgresModelMachine.server = None


TestEngineAgainstModelOnPostgres = PostgresModelMachine.TestCase
# A PostgreSQL round trip per call: a third of the profile.
TestEngineAgainstModelOnPostgres.settings = fraction(3, stateful_step_count=30)


@pytest.mark.slow
class TestEngineAgainstModelOnPostgresLong(PostgresModelMachine.TestCase):  # type: ignore[name-defined,misc]
    """A long run of the same model test on PostgreSQL, for CI."""

    settings = fraction(1 / 2, stateful_step_count=50)
