"""Numbered schema migrations, written once for every SQL store.

Each statement is a template whose ``{id}``, ``{ref}``, ``{int}``, ``{text}``,
``{time}``, ``{json}`` and ``{bool}`` name a column type; a dialect's type map
fills them in (see :mod:`.dialect`). Table, column, index and constraint names
are the same on every backend, so one query serves all of them and the
PostgreSQL store can tell a conflict by its constraint name.

Each migration is applied once, in order, inside a transaction, and its version
is recorded in ``schema_migrations``. A store refuses to open a database whose
recorded version is newer than the code knows, rather than guess at its shape.
Applied migrations are history: change the schema by adding one, never by
editing one.

This module numbers the migrations and renders them per backend; the form of
a statement is in :mod:`.migration_template`, the statements are in
:mod:`.migration_history` and, for PostgreSQL's server-side move,
:mod:`.move_function`.
"""

from __future__ import annotations

from collections.abc import Mapping

from .migration_history import (
    ACTIVE_READS,
    APPROVALS,
    CHANGE_FEED,
    CHECK_BUILDS,
    FACT_COLUMNS,
    FLAGS,
    GLOBAL_KEYS,
    INITIAL,
    LEANER_MOVES,
    LEDGER,
    QUEUE_CONTROLS,
    QUEUE_POSITION,
)
from .migration_template import POSTGRES_TYPES, SQLITE_TYPES, Migration, Only
from .move_function import MOVE_FUNCTION

__all__ = [
    "MIGRATIONS",
    "POSTGRES_MIGRATIONS",
    "SQLITE_MIGRATIONS",
    "Migration",
    "Only",
    "POSTGRES_TYPES",
    "SQLITE_TYPES",
    "render",
]


#: The schema's history, as templates (see the module docstring).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", INITIAL),
    Migration(2, "state flags and request digest", FLAGS),
    Migration(3, "leaner moves", LEANER_MOVES),
    Migration(4, "one call per move", (Only("postgresql", MOVE_FUNCTION),)),
    Migration(5, "change feed", CHANGE_FEED),
    # When a resume found the follow-up resolved (BlockedRecord.resolved_at).
    Migration(
        6,
        "resolved time",
        ("ALTER TABLE integration_blocked_outcomes ADD COLUMN resolved_at {time}",),
    ),
    Migration(7, "indexes of the active queue and the open blocks", ACTIVE_READS),
    Migration(8, "stored queue position", QUEUE_POSITION),
    Migration(9, "store identity and acknowledged moves", LEDGER),
    Migration(10, "global idempotency keys", GLOBAL_KEYS),
    Migration(11, "check builds", CHECK_BUILDS),
    Migration(12, "configuration approvals", APPROVALS),
    Migration(13, "facts in columns: lease owner, main sha, interruption", FACT_COLUMNS),
    Migration(14, "queue controls: pause, drain, promote", QUEUE_CONTROLS),
)


def render(types: Mapping[str, str], backend: str | None = None) -> tuple[Migration, ...]:
    """:data:`MIGRATIONS` with the column types of one dialect filled in.

    With ``backend``, a statement marked :class:`Only` for another backend is
    left out; without it, every statement is kept.
    """

    def keep(statement: str | Only) -> str | None:
        if isinstance(statement, str):
            return statement.format_map(types)
        if backend is None or statement.backend == backend:
            return statement.sql.format_map(types)
        return None

    return tuple(
        Migration(
            m.version,
            m.name,
            tuple(s for s in map(keep, m.statements) if s is not None),
        )
        for m in MIGRATIONS
    )


SQLITE_MIGRATIONS = render(SQLITE_TYPES, "sqlite")
POSTGRES_MIGRATIONS = render(POSTGRES_TYPES, "postgresql")
