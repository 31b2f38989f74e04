"""The PostgreSQL store: one queue shared by integrators and operators on several hosts.

Locking is the point of this module. A write transaction serializes one
candidate's moves with a transaction-scoped advisory lock on its slug, taken by
:meth:`PostgresTransaction.candidate` before the candidate is read; the lease
gets its own advisory lock in :meth:`PostgresTransaction.lease`. The locks are
released by ``COMMIT`` or ``ROLLBACK``, never held by a session, so a broken
client or a connection pool cannot leak one. The advisory lock also covers a
slug that has no row yet, which a row lock (``SELECT ... FOR UPDATE``) cannot:
two submits of one new identity are serialized, and the second sees the first's
row. The ``(candidate_id, seq)`` unique stays underneath as the last defence.

Every write transaction runs in pipeline mode: statements whose results the
Engine does not need are queued and travel with the next read or the
``COMMIT``, so a move costs two or three round trips, not seven.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from mergegate.statemachine import (
    BlockedRecord,
    ConcurrencyConflict,
    FollowUpState,
    InvalidInput,
    Lease,
    LeaseHeld,
    MergegateError,
    Occurrence,
    StoreError,
    Transition,
)

from .migrations import POSTGRES_MIGRATIONS, Migration
from .pgtext import from_pg, json_from_pg, to_pg
from .pgtransaction import LEASE_COLUMNS, PostgresTransaction, WriteTransaction, pg
from .rows import SQLRows

__all__ = ["PostgresStore"]

_BACKEND = "postgresql"
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Constraints whose violation means another writer got there first.
_CONFLICT_CONSTRAINTS = frozenset(
    {"transitions_candidate_id_seq_key", "candidates_active_slug", "transitions_idempotency"}
)


def _lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key, the same on every host and Python version."""
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class PostgresStore(SQLRows):
    """A :class:`~mergegate.statemachine.Store` on a PostgreSQL database.

    ``url_or_conninfo`` is a ``postgresql://`` URL or a libpq conninfo string.
    ``schema`` puts every table in that schema (created if missing) and sets
    ``search_path`` to it; by default the server's ``search_path`` decides.
    One instance holds one connection; use one per thread or process. A lost
    connection is reopened on the next call. Opening applies any missing migration.
    """

    backend = _BACKEND

    def __init__(
        self,
        url_or_conninfo: str,
        *,
        schema: str | None = None,
        lock_timeout: float = 30.0,
        connect_timeout: int = 10,
    ) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise InvalidInput(
                "schema", schema, "use letters, digits and underscores, not starting with a digit"
            )
        if lock_timeout <= 0:
            raise InvalidInput("lock timeout", lock_timeout, "give a positive number of seconds")
        self._conninfo = url_or_conninfo
        self.schema = schema
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self.where = _describe(url_or_conninfo)
        self._closed = False
        self._conn = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing ------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=self.connect_timeout
            )
        except psycopg.Error as err:
            raise StoreError(
                _BACKEND, f"cannot connect to {self.where}: {_first_line(err)}"
            ) from err
        # A server default of synchronous_commit=off would make COMMIT return
        # before the WAL is on disk; a commit must mean durable, so insist.
        settings = [
            sql.SQL("SET synchronous_commit TO on"),
            sql.SQL("SET TimeZone TO 'UTC'"),
            sql.SQL("SET lock_timeout TO {}").format(
                sql.Literal(f"{round(self.lock_timeout * 1000)}ms")
            ),
        ]
        if self.schema is not None:
            settings.append(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        try:
            conn.execute(sql.SQL("; ").join(settings))
            row = conn.execute("SELECT current_schema()").fetchone()
        except psycopg.Error as err:
            conn.close()
            raise StoreError(
                _BACKEND, f"cannot set up a session on {self.where}: {_first_line(err)}"
            ) from err
        namespace = self.schema or (row[0] if row and row[0] else "public")
        self._namespace = f"{conn.info.dbname}.{namespace}"
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(_BACKEND, f"the store on {self.where} was closed; open a new one")
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _translate(
        self, err: psycopg.Error, tx: PostgresTransaction | None = None
    ) -> MergegateError:
        """The one place psycopg's errors become mergegate's."""
        lost = isinstance(err, pgerrors.AdminShutdown | pgerrors.ConnectionException) or (
            isinstance(err, psycopg.OperationalError) and self._conn.broken
        )
        if lost and tx is not None and tx.committing:
            return StoreError(
                _BACKEND,
                f"the connection to {self.where} was lost while committing; the transaction "
                "may or may not have been committed: re-read the candidate before retrying "
                f"({_first_line(err)})",
            )
        if lost and tx is not None:
            return StoreError(
                _BACKEND,
                f"the connection to {self.where} was lost mid-transaction; nothing was "
                f"committed, reconnect and retry ({_first_line(err)})",
            )
        if lost:
            return StoreError(
                _BACKEND,
                f"the connection to {self.where} was lost; nothing was written, "
                f"retry to reconnect ({_first_line(err)})",
            )
        constraint = err.diag.constraint_name
        if (
            tx is not None
            and tx.context is not None
            and (
                constraint in _CONFLICT_CONSTRAINTS
                or (
                    isinstance(err, pgerrors.NotNullViolation)
                    and err.diag.table_name == "transitions"
                )
            )
        ):
            key, seq = tx.context
            return ConcurrencyConflict(key, seq, None)
        if isinstance(err, pgerrors.LockNotAvailable):
            return StoreError(
                _BACKEND,
                f"waited more than {self.lock_timeout:g} s for a lock held by another writer; "
                "nothing was written, retry when it is done",
            )
        if isinstance(err, pgerrors.DeadlockDetected | pgerrors.SerializationFailure):
            return StoreError(_BACKEND, f"{_first_line(err)}; nothing was written, retry the call")
        state = f" (SQLSTATE {err.sqlstate})" if err.sqlstate else ""
        return StoreError(_BACKEND, f"{_first_line(err)}{state}; nothing was written")

    def _query(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        conn = self._connection()
        try:
            return conn.execute(pg(query), params).fetchall()
        except psycopg.Error as err:
            raise self._translate(err) from err

    def _param_time(self, value: datetime) -> Any:
        return value

    # Free text comes back through from_pg (see pgtext): the mapping SQLRows
    # shares with SQLite, with the few free-text columns decoded first.

    @staticmethod
    def _transition(row: Any) -> Transition:
        actor, reason, key = from_pg(row[6]), from_pg(row[8]), from_pg(row[9])
        return SQLRows._transition((*row[:6], actor, row[7], reason, key))

    @staticmethod
    def _lease(row: Any) -> Lease:
        return SQLRows._lease((row[0], from_pg(row[1]), *row[2:]))

    @staticmethod
    def _blocked(row: Any) -> BlockedRecord:
        return SQLRows._blocked((*row[:10], from_pg(row[10]), *row[11:]))

    @staticmethod
    def _occurrence(row: Any) -> Occurrence:
        return SQLRows._occurrence((*row[:4], json_from_pg(row[4])))

    def _lock(self, *parts: str) -> int:
        return _lock_key(self._namespace, *parts)

    def _migrate(self) -> None:
        conn = self._connection()
        try:
            with conn.transaction():
                # Two hosts opening a fresh schema at once must not both create it.
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock("migrate"),))
                if self.schema is not None:
                    conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                            sql.Identifier(self.schema)
                        )
                    )
                conn.execute(
                    """CREATE TABLE IF NOT EXISTS schema_migrations (
                        version integer PRIMARY KEY, name text NOT NULL,
                        applied_at timestamptz NOT NULL)"""
                )
                done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
                known = {m.version for m in POSTGRES_MIGRATIONS}
                if done - known:
                    raise StoreError(
                        _BACKEND,
                        f"{self.where} has schema version {max(done)}, newer than this "
                        f"mergegate knows ({max(known)}); upgrade mergegate",
                    )
                for migration in POSTGRES_MIGRATIONS:
                    if migration.version not in done:
                        self._apply(conn, migration)
        except psycopg.Error as err:
            raise self._translate(err) from err

    @staticmethod
    def _apply(conn: psycopg.Connection[Any], migration: Migration) -> None:
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, now())",
            (migration.version, migration.name),
        )

    def _engine_problems(self) -> list[str]:
        rows = self._query(
            "SELECT i.indexrelid::regclass::text FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid"
        )
        return [f"postgresql index {name} is invalid; REINDEX it" for (name,) in rows]

    # -- the Store protocol --------------------------------------------------

    @property
    def backend_pid(self) -> int:
        """The server process id of this store's session, for ``pg_stat_activity``."""
        return self._connection().info.backend_pid

    def schema_versions(self) -> list[int]:
        """The migration versions applied to this database, in order."""
        return [v for (v,) in self._query("SELECT version FROM schema_migrations ORDER BY 1")]

    def transaction(self) -> WriteTransaction:
        """One database transaction; commits on normal exit, rolls back on error.

        A conflict the database detects in a pipelined write (a duplicate
        ``(candidate, seq)``) surfaces as ConcurrencyConflict when the block exits.
        """
        return WriteTransaction(self)

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        self._closed = True
        self._conn.close()

    def renew_lease(self, name: str, owner: str, expires_at: datetime) -> Lease:
        """Push the expiry of ``owner``'s lease; raises LeaseHeld if ``owner`` lost it."""
        rows = self._query(
            f"UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? "
            f"RETURNING {LEASE_COLUMNS}",
            (expires_at, name, to_pg(owner)),
        )
        if rows:
            return self._lease(rows[0])
        held = self._query(f"SELECT {LEASE_COLUMNS} FROM leases WHERE name = ?", (name,))
        if held:
            raise LeaseHeld(name, from_pg(held[0][1]), held[0][4].isoformat())
        raise LeaseHeld(name, "nobody", "-")

    def finish_follow_up(
        self, follow_up_slug: str, state: FollowUpState, error: str | None
    ) -> None:
        """Record the result of materializing a follow-up; ``CREATED`` marks its outbox row done."""
        # The outcome row first, then the outbox row: the order record_block
        # locks them in. The other order deadlocks against a concurrent replay.
        with self.transaction() as tx:
            tx.execute(
                "UPDATE integration_blocked_outcomes SET follow_up_state = %s, "
                "follow_up_error = %s WHERE follow_up_slug = %s",
                (state.value, to_pg(error), follow_up_slug),
            )
            tx.execute(
                "UPDATE follow_up_outbox SET attempts = attempts + 1, last_error = %s, "
                "done_at = CASE WHEN %s THEN COALESCE(done_at, now()) ELSE NULL END "
                "WHERE follow_up_slug = %s",
                (to_pg(error), state is FollowUpState.CREATED, follow_up_slug),
            )


def _describe(conninfo: str) -> str:
    """Where the store points, for messages: never the password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as err:
        raise InvalidInput(
            "PostgreSQL URL", "<hidden>", f"not a libpq URL or conninfo ({_first_line(err)})"
        ) from None
    host = str(parts.get("host") or "local socket")
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f" as {parts['user']}" if parts.get("user") else ""
    return f"PostgreSQL {host}{port}/{parts.get('dbname') or '(default)'}{user}"
