"""Numbered schema migrations, shared by the SQL stores.

Each migration is applied once, in order, inside a transaction, and its version
is recorded in ``schema_migrations``. A store refuses to open a database whose
recorded version is newer than the code knows, rather than guess at its shape.
"""

from __future__ import annotations

import attrs

__all__ = ["POSTGRES_MIGRATIONS", "SQLITE_MIGRATIONS", "Migration"]


@attrs.frozen
class Migration:
    """One schema step: ``version`` is its number, ``statements`` run in order."""

    version: int
    name: str
    statements: tuple[str, ...]


SQLITE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial",
        (
            """CREATE TABLE candidates (
                id INTEGER PRIMARY KEY,
                slug TEXT NOT NULL,
                branch TEXT NOT NULL,
                sha TEXT NOT NULL,
                state TEXT NOT NULL,
                seq INTEGER NOT NULL CHECK (seq >= 0),
                submitted_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            # One unintegrated candidate per slug: the slug names one work item.
            """CREATE UNIQUE INDEX candidates_active_slug
                ON candidates (slug) WHERE state <> 'integrated'""",
            "CREATE INDEX candidates_slug ON candidates (slug, id)",
            "CREATE INDEX candidates_state ON candidates (state, id)",
            """CREATE INDEX candidates_queue ON candidates (updated_at, id)
                WHERE state IN ('pending', 'retry')""",
            """CREATE TABLE transitions (
                id INTEGER PRIMARY KEY,
                candidate_id INTEGER NOT NULL REFERENCES candidates (id),
                seq INTEGER NOT NULL CHECK (seq >= 1),
                event TEXT NOT NULL,
                source TEXT,
                dest TEXT NOT NULL,
                sha TEXT NOT NULL,
                actor TEXT NOT NULL,
                at TEXT NOT NULL,
                reason TEXT,
                idempotency_key TEXT,
                UNIQUE (candidate_id, seq)
            )""",
            """CREATE UNIQUE INDEX transitions_idempotency
                ON transitions (candidate_id, idempotency_key)
                WHERE idempotency_key IS NOT NULL""",
            "CREATE INDEX transitions_at ON transitions (at)",
            """CREATE TABLE integration_blocked_outcomes (
                id INTEGER PRIMARY KEY,
                slug TEXT NOT NULL,
                branch TEXT NOT NULL,
                sha TEXT NOT NULL,
                reason TEXT NOT NULL,
                main_sha TEXT NOT NULL,
                follow_up_slug TEXT NOT NULL UNIQUE,
                previous_follow_up TEXT,
                status TEXT NOT NULL CHECK (status IN ('open', 'resumed')),
                follow_up_state TEXT NOT NULL,
                follow_up_error TEXT,
                blocked_at TEXT NOT NULL,
                last_blocked_at TEXT NOT NULL,
                resumed_at TEXT,
                occurrences INTEGER NOT NULL CHECK (occurrences >= 1),
                UNIQUE (slug, branch, sha)
            )""",
            """CREATE INDEX blocked_last ON integration_blocked_outcomes (last_blocked_at, id)""",
            """CREATE INDEX blocked_reason
                ON integration_blocked_outcomes (reason, last_blocked_at, id)""",
            "CREATE INDEX blocked_slug ON integration_blocked_outcomes (slug, id)",
            """CREATE TABLE blocked_evidence (
                id INTEGER PRIMARY KEY,
                blocked_id INTEGER NOT NULL REFERENCES integration_blocked_outcomes (id),
                number INTEGER NOT NULL CHECK (number >= 1),
                seq INTEGER NOT NULL,
                at TEXT NOT NULL,
                report TEXT NOT NULL,
                UNIQUE (blocked_id, number)
            )""",
            """CREATE TABLE follow_up_outbox (
                id INTEGER PRIMARY KEY,
                follow_up_slug TEXT NOT NULL UNIQUE,
                blocked_id INTEGER NOT NULL REFERENCES integration_blocked_outcomes (id),
                created_at TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                done_at TEXT,
                last_error TEXT
            )""",
            """CREATE INDEX follow_up_outbox_pending ON follow_up_outbox (id)
                WHERE done_at IS NULL""",
            """CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                candidate_id INTEGER REFERENCES candidates (id),
                acquired_at TEXT NOT NULL,
                expires_at TEXT NOT NULL
            )""",
        ),
    ),
)


# The same versions as SQLITE_MIGRATIONS, in PostgreSQL's own types. Table,
# column, index and constraint names match, so SQLRows' queries serve both and
# the PostgreSQL store can tell a conflict by its constraint name.
POSTGRES_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial",
        (
            """CREATE TABLE candidates (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                slug text NOT NULL,
                branch text NOT NULL,
                sha text NOT NULL,
                state text NOT NULL,
                seq integer NOT NULL CHECK (seq >= 0),
                submitted_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL
            )""",
            # One unintegrated candidate per slug: the slug names one work item.
            """CREATE UNIQUE INDEX candidates_active_slug
                ON candidates (slug) WHERE state <> 'integrated'""",
            "CREATE INDEX candidates_slug ON candidates (slug, id)",
            "CREATE INDEX candidates_state ON candidates (state, id)",
            """CREATE INDEX candidates_queue ON candidates (updated_at, id)
                WHERE state IN ('pending', 'retry')""",
            """CREATE TABLE transitions (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                candidate_id bigint NOT NULL REFERENCES candidates (id),
                seq integer NOT NULL CHECK (seq >= 1),
                event text NOT NULL,
                source text,
                dest text NOT NULL,
                sha text NOT NULL,
                actor text NOT NULL,
                at timestamptz NOT NULL,
                reason text,
                idempotency_key text,
                CONSTRAINT transitions_candidate_id_seq_key UNIQUE (candidate_id, seq)
            )""",
            """CREATE UNIQUE INDEX transitions_idempotency
                ON transitions (candidate_id, idempotency_key)
                WHERE idempotency_key IS NOT NULL""",
            "CREATE INDEX transitions_at ON transitions (at)",
            """CREATE TABLE integration_blocked_outcomes (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                slug text NOT NULL,
                branch text NOT NULL,
                sha text NOT NULL,
                reason text NOT NULL,
                main_sha text NOT NULL,
                follow_up_slug text NOT NULL UNIQUE,
                previous_follow_up text,
                status text NOT NULL CHECK (status IN ('open', 'resumed')),
                follow_up_state text NOT NULL,
                follow_up_error text,
                blocked_at timestamptz NOT NULL,
                last_blocked_at timestamptz NOT NULL,
                resumed_at timestamptz,
                occurrences integer NOT NULL CHECK (occurrences >= 1),
                UNIQUE (slug, branch, sha)
            )""",
            """CREATE INDEX blocked_last ON integration_blocked_outcomes (last_blocked_at, id)""",
            """CREATE INDEX blocked_reason
                ON integration_blocked_outcomes (reason, last_blocked_at, id)""",
            "CREATE INDEX blocked_slug ON integration_blocked_outcomes (slug, id)",
            """CREATE TABLE blocked_evidence (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                blocked_id bigint NOT NULL REFERENCES integration_blocked_outcomes (id),
                number integer NOT NULL CHECK (number >= 1),
                seq integer NOT NULL,
                at timestamptz NOT NULL,
                report jsonb NOT NULL,
                UNIQUE (blocked_id, number)
            )""",
            """CREATE TABLE follow_up_outbox (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                follow_up_slug text NOT NULL UNIQUE,
                blocked_id bigint NOT NULL REFERENCES integration_blocked_outcomes (id),
                created_at timestamptz NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                done_at timestamptz,
                last_error text
            )""",
            """CREATE INDEX follow_up_outbox_pending ON follow_up_outbox (id)
                WHERE done_at IS NULL""",
            """CREATE TABLE leases (
                name text PRIMARY KEY,
                owner text NOT NULL,
                candidate_id bigint REFERENCES candidates (id),
                acquired_at timestamptz NOT NULL,
                expires_at timestamptz NOT NULL
            )""",
        ),
    ),
)
