"""One PostgreSQL session shared by a store's threads: connecting, the dialect, errors.

A :class:`PostgresDatastore` holds the store's one session, reopens it when it
is lost, runs every write transaction in pipeline mode and turns the server's
errors into mergegate's (a lost connection while committing is
``OutcomeUnknown``, a lock held past the timeout ``StoreUnavailable``, a
writer that got there first ``ConcurrencyConflict``). The store on top of it
is :mod:`.postgres`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from mergegate.statemachine import (
    BlockedReport,
    ConcurrencyConflict,
    InvalidInput,
    MergegateError,
    OutcomeUnknown,
    StoreError,
    StoreUnavailable,
)

from .codec import dump_report
from .dialect import Dialect
from .migrations import POSTGRES_TYPES
from .pgtext import from_pg, json_from_pg, json_to_pg, to_pg
from .rows import row_class
from .sqltransaction import SQLTransaction

__all__ = ["BACKEND", "SCHEMA_NAME", "Lost", "PostgresDatastore", "PostgresDialect", "first_line"]

BACKEND = "postgresql"

SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Constraints whose violation means another writer got there first.
_CONFLICT_CONSTRAINTS = frozenset(
    {"transitions_candidate_id_seq_key", "candidates_active_slug", "transitions_idempotency"}
)


@lru_cache(maxsize=256)
def _placeholders(query: str) -> str:
    return query.replace("%", "%%").replace("?", "%s")


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _named_rows(cursor: Any) -> Any:
    """psycopg row factory: tuples that are also indexed by column name."""
    # psycopg calls this once per statement. The names come straight from the
    # result, as psycopg's own namedtuple_row takes them: ``cursor.description``
    # builds a Column object per column, 60 us for the 23 of a candidate read.
    res = cursor.pgresult
    if res is None or res.status != pq.ExecStatus.TUPLES_OK:
        return tuple
    return _row_class(*[res.fname(i) for i in range(res.nfields)])


@lru_cache(maxsize=256)
def _row_class(*names: bytes) -> type[Any]:
    # Column names are mergegate's own ASCII identifiers.
    return row_class(tuple(n.decode("ascii") for n in names))


@lru_cache(maxsize=4096)
def _lock_key(*parts: str) -> int:
    # Every move locks its candidate's key, many the lease's too: the same few
    # names over and over, so each is hashed once.
    return int.from_bytes(
        hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest(), "big", signed=True
    )


class PostgresDialect(Dialect):
    """``%s`` placeholders, native times and JSON, NUL-safe text, advisory locks."""

    backend = BACKEND
    types = POSTGRES_TYPES
    # No row lock on the head: claims are serialized by an advisory lock on
    # the queue instead (SQLTransaction.claim_next). SKIP LOCKED passed over a
    # head that a losing claimer held for a moment, and so applied out of order.
    claim_clause = ""
    # Concurrent writers: a sequence, also the column's default (migration 5).
    next_queue_pos = "nextval('candidates_queue_pos_seq')"
    lock_sql = "SELECT pg_advisory_xact_lock(%s)"
    prefetch = True
    returning = True
    writes_in_cte = True
    true = True
    false = False

    def __init__(self, namespace: str) -> None:
        # Lock keys include the database and schema: two queues on one server
        # must not block each other.
        self._namespace = namespace

    def sql(self, query: str) -> str:
        return _placeholders(query)

    @staticmethod
    def time_in(value: datetime) -> Any:
        return value

    text_in = staticmethod(to_pg)  # type: ignore[assignment]
    text_out = staticmethod(from_pg)  # type: ignore[assignment]

    def report_in(self, report: BlockedReport) -> Any:
        return Jsonb(json_to_pg(dump_report(report)))

    def report_out(self, value: Any) -> Any:
        return json_from_pg(value)

    def lock_key(self, *parts: str) -> int:
        """A signed 64-bit advisory lock key, the same on every host and Python version."""
        return _lock_key(self._namespace, *parts)


class Lost(Exception):
    """The session was lost during a one-statement call (see ``PostgresStore._landed``)."""

    def __init__(self, err: BaseException) -> None:
        super().__init__(str(err))
        self.err = err


class PostgresDatastore:
    """One session on the server, reopened when it is lost, shared by the store's threads."""

    def __init__(
        self, conninfo: str, schema: str | None, lock_timeout: float, connect_timeout: int
    ) -> None:
        self._conninfo = conninfo
        self.schema = schema
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self.where = _describe(conninfo)
        self.lock = threading.RLock()
        self.closed = False
        self._pipeline: AbstractContextManager[Any] | None = None
        #: Called after a commit that wrote a log entry (the store's feed wake-up).
        self.after_log: Callable[[], None] | None = None
        self._call_cursor: psycopg.Cursor[Any] | None = None
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                row_factory=_named_rows,
            )
        except psycopg.Error as err:
            raise StoreUnavailable(
                BACKEND, f"cannot connect to {self.where}: {first_line(err)}"
            ) from err
        # A server default of synchronous_commit=off would make COMMIT return
        # before the WAL is on disk; a commit must mean durable, so insist.
        settings = [
            sql.SQL("SET synchronous_commit TO on"),
            sql.SQL("SET TimeZone TO 'UTC'"),
            # In pipeline mode psycopg can hand a read the result of an earlier
            # statement when a NOTICE arrives in between (``CREATE ... IF NOT
            # EXISTS`` sends one): 47 of 300 migration reads went wrong that way.
            # mergegate needs no notices, so the server sends none.
            sql.SQL("SET client_min_messages TO warning"),
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
            raise StoreUnavailable(
                BACKEND, f"cannot set up a session on {self.where}: {first_line(err)}"
            ) from err
        namespace = self.schema or (row[0] if row and row[0] else "public")
        self.dialect = PostgresDialect(f"{conn.info.dbname}.{namespace}")
        return conn

    def connection(self) -> psycopg.Connection[Any]:
        """The session, reopened first if it was lost."""
        if self.closed:
            raise StoreError(BACKEND, f"the store on {self.where} was closed; open a new one")
        if self.conn.closed or self.conn.broken:
            self.conn.close()
            self.conn = self._connect()
        return self.conn

    def translate(self, err: Exception, tx: SQLTransaction | None) -> MergegateError:
        lost = isinstance(err, pgerrors.AdminShutdown | pgerrors.ConnectionException) or (
            isinstance(err, psycopg.OperationalError) and self.conn.broken
        )
        if lost and tx is not None and tx.committing:
            return OutcomeUnknown(
                BACKEND,
                f"the connection to {self.where} was lost while committing; the transaction "
                "may or may not have been committed: re-read the candidate before retrying "
                f"({first_line(err)})",
            )
        if lost and tx is not None:
            return StoreUnavailable(
                BACKEND,
                f"the connection to {self.where} was lost mid-transaction; nothing was "
                f"committed, reconnect and retry ({first_line(err)})",
            )
        if lost:
            return StoreUnavailable(
                BACKEND,
                f"the connection to {self.where} was lost; nothing was written, "
                f"retry to reconnect ({first_line(err)})",
            )
        diag = err.diag if isinstance(err, psycopg.Error) else None
        if (
            diag is not None
            and tx is not None
            and tx.context is not None
            and (
                diag.constraint_name in _CONFLICT_CONSTRAINTS
                or (isinstance(err, pgerrors.NotNullViolation) and diag.table_name == "transitions")
            )
        ):
            key, seq = tx.context
            return ConcurrencyConflict(key, seq, None)
        if isinstance(err, pgerrors.LockNotAvailable):
            return StoreUnavailable(
                BACKEND,
                f"waited more than {self.lock_timeout:g} s for a lock held by another writer; "
                "nothing was written, retry when it is done",
            )
        if isinstance(err, pgerrors.DeadlockDetected | pgerrors.SerializationFailure):
            return StoreError(BACKEND, f"{first_line(err)}; nothing was written, retry the call")
        state = getattr(err, "sqlstate", None)
        suffix = f" (SQLSTATE {state})" if state else ""
        return StoreError(BACKEND, f"{first_line(err)}{suffix}; nothing was written")

    def query(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        conn = self.connection()
        try:
            return conn.execute(query, params).fetchall()
        except psycopg.Error as err:
            raise self.translate(err, None) from err

    # BEGIN and COMMIT are plain pipelined statements rather than psycopg's
    # ``transaction()``, which syncs at COMMIT and again when the pipeline
    # ends: this way the COMMIT travels with the queued writes, in one round trip.

    def begin(self) -> Any:
        conn = self.connection()
        try:
            self._pipeline = conn.pipeline()
            self._pipeline.__enter__()
            conn.execute("BEGIN")
        except BaseException as exc:
            self._fail(exc, None)
        return conn.cursor()

    def commit(self, tx: SQLTransaction) -> None:
        try:
            tx.committing = True
            self.conn.execute("COMMIT")
            self._end(None)
        except BaseException as err:
            self._fail(err, tx)
        if (tx.context is not None or tx.controlled) and self.after_log is not None:
            self.after_log()  # a log entry or a queue control: wake the waiters

    def abort(self, exc: BaseException, tx: SQLTransaction) -> None:
        if isinstance(exc, psycopg.Error):
            self._fail(exc, tx)
        # Anything else (an Engine error, a KeyboardInterrupt) propagates as it is.
        with suppress(psycopg.Error):
            self._end(exc)
        if isinstance(exc, MergegateError) and not isinstance(exc, StoreError):
            self._decline()
            return
        self._roll_back()

    def _decline(self) -> None:
        """Roll back after the Engine refused a move, keeping the prepared statements.

        psycopg forgets every prepared statement when it sees a ``ROLLBACK``
        (in case the transaction dropped or altered what they name) and then
        sends ``DEALLOCATE ALL``. A refused move (a held lease, a stale seq)
        changed no schema, and in a busy queue it is common: going through
        libpq directly keeps the statements, and saves the round trips of
        deallocating and preparing them again.
        """
        conn = self.conn
        if conn.broken or conn.closed:
            return
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return
        result = conn.pgconn.exec_(b"ROLLBACK")
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            conn.close()  # the session is in an unknown state: the next call reopens it

    def _end(self, exc: BaseException | None) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            # Given an exception, psycopg logs any error of its own instead of raising it.
            pipeline.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    def _fail(self, exc: BaseException, tx: SQLTransaction | None) -> Any:
        with suppress(psycopg.Error):
            self._end(exc)
        self._roll_back()
        if isinstance(exc, psycopg.Error):
            raise self.translate(exc, tx) from exc
        raise exc

    def _roll_back(self) -> None:
        conn = self.conn
        if conn.broken or conn.closed:
            return
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()

    def prepare_migration(self, tx: SQLTransaction) -> None:
        # Two hosts opening a fresh schema at once must not both create it.
        tx.execute("SELECT pg_advisory_xact_lock(?)", (self.dialect.lock_key("migrate"),))
        if self.schema is not None:
            tx.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}")
                .format(sql.Identifier(self.schema))
                .as_string(self.conn)
            )

    def recorded_version(self) -> int | None:
        conn = self.connection()
        try:
            row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        except pgerrors.UndefinedTable:
            return None  # a new schema (or no schema yet)
        except psycopg.Error as err:
            raise self.translate(err, None) from err
        return None if row is None else row[0]

    def call(self, query: str, params: tuple[Any, ...]) -> Any:
        """Run one statement as a transaction of its own (one round trip); its first row."""
        conn = self.connection()
        try:
            cursor = self._call_cursor
            if cursor is None or cursor.connection is not conn:
                # One cursor per session: it keeps its adapters from call to
                # call. A plain tuple row: a named row class per call costs more.
                cursor = self._call_cursor = conn.cursor(row_factory=tuple_row)
            return cursor.execute(query, params, prepare=True).fetchone()
        except psycopg.IntegrityError:
            # A writer that got in first: the statement committed nothing.
            raise
        except psycopg.Error as err:
            if conn.broken or conn.closed:
                raise Lost(err) from err
            raise self.translate(err, None) from err

    def unknown(self, err: BaseException) -> OutcomeUnknown:
        """The error for a call whose outcome could not be read back."""
        # One statement is its own transaction: the call was also the COMMIT.
        return OutcomeUnknown(
            BACKEND,
            f"the connection to {self.where} was lost while committing; the transaction "
            "may or may not have been committed: re-read the candidate before retrying "
            f"({first_line(err)})",
        )

    def close(self) -> None:
        self.closed = True
        self.conn.close()


def _describe(conninfo: str) -> str:
    """Where the store points, for messages: never the password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as err:
        raise InvalidInput(
            "PostgreSQL URL", "<hidden>", f"not a libpq URL or conninfo ({first_line(err)})"
        ) from None
    host = str(parts.get("host") or "local socket")
    port = f":{parts['port']}" if parts.get("port") else ""
    user = f" as {parts['user']}" if parts.get("user") else ""
    return f"PostgreSQL {host}{port}/{parts.get('dbname') or '(default)'}{user}"
