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
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from mergegate.statemachine import TABLE, State

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


@attrs.frozen
class Only:
    """A template statement that runs on one backend only (``backend``: a ``Store.backend``)."""

    backend: str
    sql: str


@attrs.frozen
class Migration:
    """One schema step: ``version`` is its number, ``statements`` run in order.

    In :data:`MIGRATIONS` a statement may be an :class:`Only`; the rendered
    lists hold plain SQL, the statements of their backend.
    """

    version: int
    name: str
    statements: tuple[str | Only, ...]


SQLITE_TYPES: Mapping[str, str] = {
    "id": "INTEGER PRIMARY KEY",
    "ref": "INTEGER",
    "int": "INTEGER",
    "text": "TEXT",
    "time": "TEXT",
    "json": "TEXT",
    "bool": "INTEGER",
}

POSTGRES_TYPES: Mapping[str, str] = {
    "id": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "ref": "bigint",
    "int": "integer",
    "text": "text",
    "time": "timestamptz",
    "json": "jsonb",
    "bool": "boolean",
}


def _in(states: frozenset[State]) -> str:
    # State values are fixed lower-case words, so quoting them inline is safe;
    # sorted, so the rendered SQL is the same on every run.
    return ", ".join(f"'{s.value}'" for s in sorted(states, key=lambda s: s.value))


_INITIAL = (
    """CREATE TABLE candidates (
        id {id},
        slug {text} NOT NULL,
        branch {text} NOT NULL,
        sha {text} NOT NULL,
        state {text} NOT NULL,
        seq {int} NOT NULL CHECK (seq >= 0),
        submitted_at {time} NOT NULL,
        updated_at {time} NOT NULL
    )""",
    # One unintegrated candidate per slug: the slug names one work item.
    # Version 2 replaces this index and candidates_queue by ones on flag columns.
    """CREATE UNIQUE INDEX candidates_active_slug
        ON candidates (slug) WHERE state <> 'integrated'""",
    "CREATE INDEX candidates_slug ON candidates (slug, id)",
    "CREATE INDEX candidates_state ON candidates (state, id)",
    """CREATE INDEX candidates_queue ON candidates (updated_at, id)
        WHERE state IN ('pending', 'retry')""",
    """CREATE TABLE transitions (
        id {id},
        candidate_id {ref} NOT NULL REFERENCES candidates (id),
        seq {int} NOT NULL CHECK (seq >= 1),
        event {text} NOT NULL,
        source {text},
        dest {text} NOT NULL,
        sha {text} NOT NULL,
        actor {text} NOT NULL,
        at {time} NOT NULL,
        reason {text},
        idempotency_key {text},
        CONSTRAINT transitions_candidate_id_seq_key UNIQUE (candidate_id, seq)
    )""",
    """CREATE UNIQUE INDEX transitions_idempotency
        ON transitions (candidate_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
    "CREATE INDEX transitions_at ON transitions (at)",
    """CREATE TABLE integration_blocked_outcomes (
        id {id},
        slug {text} NOT NULL,
        branch {text} NOT NULL,
        sha {text} NOT NULL,
        reason {text} NOT NULL,
        main_sha {text} NOT NULL,
        follow_up_slug {text} NOT NULL UNIQUE,
        previous_follow_up {text},
        status {text} NOT NULL CHECK (status IN ('open', 'resumed')),
        follow_up_state {text} NOT NULL,
        follow_up_error {text},
        blocked_at {time} NOT NULL,
        last_blocked_at {time} NOT NULL,
        resumed_at {time},
        occurrences {int} NOT NULL CHECK (occurrences >= 1),
        UNIQUE (slug, branch, sha)
    )""",
    "CREATE INDEX blocked_last ON integration_blocked_outcomes (last_blocked_at, id)",
    """CREATE INDEX blocked_reason
        ON integration_blocked_outcomes (reason, last_blocked_at, id)""",
    "CREATE INDEX blocked_slug ON integration_blocked_outcomes (slug, id)",
    """CREATE TABLE blocked_evidence (
        id {id},
        blocked_id {ref} NOT NULL REFERENCES integration_blocked_outcomes (id),
        number {int} NOT NULL CHECK (number >= 1),
        seq {int} NOT NULL,
        at {time} NOT NULL,
        report {json} NOT NULL,
        UNIQUE (blocked_id, number)
    )""",
    """CREATE TABLE follow_up_outbox (
        id {id},
        follow_up_slug {text} NOT NULL UNIQUE,
        blocked_id {ref} NOT NULL REFERENCES integration_blocked_outcomes (id),
        created_at {time} NOT NULL,
        attempts {int} NOT NULL DEFAULT 0,
        done_at {time},
        last_error {text}
    )""",
    """CREATE INDEX follow_up_outbox_pending ON follow_up_outbox (id)
        WHERE done_at IS NULL""",
    """CREATE TABLE leases (
        name {text} PRIMARY KEY,
        owner {text} NOT NULL,
        candidate_id {ref} REFERENCES candidates (id),
        acquired_at {time} NOT NULL,
        expires_at {time} NOT NULL
    )""",
)

# The state sets live in the lifecycle table, not here: the write path sets
# ``active`` and ``queued`` from TABLE.active and TABLE.queued, and every index
# and query filters on the flags, so a new state needs no SQL change. The
# backfill of rows written before version 2 is the one place the sets reach SQL.
_FLAGS = (
    "ALTER TABLE candidates ADD COLUMN active {bool} NOT NULL DEFAULT TRUE",
    "ALTER TABLE candidates ADD COLUMN queued {bool} NOT NULL DEFAULT FALSE",
    f"UPDATE candidates SET active = state IN ({_in(TABLE.active)}), "
    f"queued = state IN ({_in(TABLE.queued)})",
    "DROP INDEX candidates_active_slug",
    "CREATE UNIQUE INDEX candidates_active_slug ON candidates (slug) WHERE active",
    "DROP INDEX candidates_queue",
    "CREATE INDEX candidates_queue ON candidates (updated_at, id) WHERE queued",
    # The digest of the request behind an idempotency key (Transition.request_digest).
    "ALTER TABLE transitions ADD COLUMN request_digest {text}",
)

# A move writes the fewest pages it can (docs/performance.md, figure 1).
# ``candidates_state`` changed on every move, since every move changes the
# state; the one query that used it, ``Store.candidates(state)``, reads the
# candidates table instead, which holds one row per work item, not per move.
# ``transitions_at`` cost a page on every move and served no query of
# mergegate's: the history of a candidate is read through the log's
# ``(candidate_id, seq)`` key, and only an ad-hoc scan of every move over a
# window (docs/storage-schema.md) filtered on ``at`` alone.
# The lease row is rewritten by every start and end of an apply: in SQLite a
# table keyed by text keeps a separate index for its key, one more page per
# write, which a WITHOUT ROWID table (stored in its key's order) does not.
# PostgreSQL has no such distinction, so it keeps its table.
_LEANER_MOVES = (
    "DROP INDEX candidates_state",
    "DROP INDEX transitions_at",
    Only(
        "sqlite",
        """CREATE TABLE leases_v3 (
        name {text} PRIMARY KEY,
        owner {text} NOT NULL,
        candidate_id {ref} REFERENCES candidates (id),
        acquired_at {time} NOT NULL,
        expires_at {time} NOT NULL
    ) WITHOUT ROWID""",
    ),
    Only(
        "sqlite",
        "INSERT INTO leases_v3 (name, owner, candidate_id, acquired_at, expires_at) "
        "SELECT name, owner, candidate_id, acquired_at, expires_at FROM leases",
    ),
    Only("sqlite", "DROP TABLE leases"),
    Only("sqlite", "ALTER TABLE leases_v3 RENAME TO leases"),
)

#: The schema's history, as templates (see the module docstring).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _INITIAL),
    Migration(2, "state flags and request digest", _FLAGS),
    Migration(3, "leaner moves", _LEANER_MOVES),
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
