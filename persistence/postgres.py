"""The PostgreSQL store: one queue shared by integrators and operators on several hosts.

Locking is the point of this module. A write transaction serializes one
candidate's moves with a transaction-scoped advisory lock on its slug, taken
before the candidate is read; the lease gets its own advisory lock. The locks
are released by ``COMMIT`` or ``ROLLBACK``, never held by a session, so a
broken client or a connection pool cannot leak one. The advisory lock also
covers a slug that has no row yet, which a row lock (``SELECT ... FOR UPDATE``)
cannot: two submits of one new identity are serialized, and the second sees the
first's row. The ``(candidate_id, seq)`` unique stays underneath as the last
defence.

Every write transaction runs in pipeline mode: statements whose results the
Engine does not need are queued and travel with the next read or the
``COMMIT``, so a move costs two or three round trips, not seven. A plain move
(the Engine's fast path, :class:`~mergegate.statemachine.Move`) costs one: a
call of the server-side function ``mergegate_move`` (migration 13), which takes
the same advisory locks in the same order. The function carries out the flags
of the table's compiled steps (:class:`~mergegate.statemachine.Step`) that
:data:`FAST_FLAGS` names, and the store offers it only steps whose other flags
are all off: every flag is named here as carried or declined, checked at import,
so a new effect cannot reach the function unhandled.
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
    Candidate,
    ConcurrencyConflict,
    InvalidInput,
    MergegateError,
    OutcomeUnknown,
    State,
    StoreError,
    StoreUnavailable,
    TableError,
)
from mergegate.statemachine.extension import STEP_FLAGS, Move, Moved, Step

from .codec import dump_report
from .dialect import Dialect
from .feed import PostgresWaiter, PostgresWaker
from .migrations import POSTGRES_MIGRATIONS, POSTGRES_TYPES
from .pgtext import from_pg, json_from_pg, json_to_pg, to_pg
from .rows import _key as candidate_key
from .rows import row_class
from .sqlstore import SQLStore
from .sqltransaction import SQLTransaction

__all__ = ["PostgresStore"]

_BACKEND = "postgresql"
# The steps travel as array literals (text, cast on the server), made once per
# event: psycopg's array adaptation costs more client time than the rest of the call.
_MOVE = (
    "SELECT id, branch, sha, source, seq, submitted_at FROM mergegate_move("
    "%s, %s, %s, %s, %s, %s::text[], %s::text[], %s::boolean[], %s::boolean[], "
    "%s::boolean[], %s::boolean[], %s::boolean[], %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

#: The step flags ``mergegate_move`` carries out (its arrays pass them per step;
#: it writes ``active`` and ``queued`` on every move, changed or not).
FAST_FLAGS = frozenset(
    {
        "take_lease",
        "release_lease",
        "close_blocked",
        "drop_blocked",
        "releases_identity",
        "active_changes",
        "queued_changes",
    }
)
#: The flags it does not: a step with any of them on takes the Engine's one path.
#: A block needs its outcome's row and evidence; a new sha, the candidate's new
#: identity; a re-entry, a new queue place; a blocked-carrying destination, its
#: outcome in the answer.
_DECLINED = frozenset({"record_block", "supersede_sha", "reenters", "carries_blocked"})
if FAST_FLAGS | _DECLINED != STEP_FLAGS or FAST_FLAGS & _DECLINED:
    raise TableError(
        "persistence/postgres.py must name every Step flag as carried (FAST_FLAGS) or declined: "
        + ", ".join(sorted(STEP_FLAGS ^ (FAST_FLAGS | _DECLINED)))
    )


def _fast(step: Step) -> bool:
    return not any(getattr(step, flag) for flag in _DECLINED)


@lru_cache(maxsize=64)
def _fast_steps(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """The steps of one event that ``mergegate_move`` may carry out."""
    return tuple(step for step in steps if _fast(step))


@lru_cache(maxsize=64)
def _step_arrays(steps: tuple[Step, ...]) -> tuple[str, ...]:
    """The steps of one event as the seven array literals ``mergegate_move`` takes."""

    def text(values: list[str | None]) -> str:
        # State values are plain lower-case words: no quoting needed.
        return "{" + ",".join("NULL" if v is None else v for v in values) + "}"

    def flags(values: list[bool]) -> str:
        return "{" + ",".join("t" if v else "f" for v in values) + "}"

    return (
        text([None if s.source is None else s.source.value for s in steps]),
        text([s.dest.value for s in steps]),
        flags([s.active for s in steps]),
        flags([s.queued for s in steps]),
        flags([s.take_lease for s in steps]),
        flags([s.release_lease for s in steps]),
        flags([s.close_blocked or s.drop_blocked for s in steps]),
    )


_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Constraints whose violation means another writer got there first.
_CONFLICT_CONSTRAINTS = frozenset(
    {"transitions_candidate_id_seq_key", "candidates_active_slug", "transitions_idempotency"}
)


@lru_cache(maxsize=256)
def _placeholders(query: str) -> str:
    return query.replace("%", "%%").replace("?", "%s")


def _first_line(err: BaseException) -> str:
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

    backend = _BACKEND
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


class _Lost(Exception):
    """The session was lost during a one-statement call (see ``PostgresStore._landed``)."""

    def __init__(self, err: BaseException) -> None:
        super().__init__(str(err))
        self.err = err


# Whether a call of mergegate_move committed: its entry, in the function's row shape.
_LANDED = (
    "SELECT c.id, c.branch, c.sha, t.source, t.seq - 1, c.submitted_at FROM transitions t "
    "JOIN candidates c ON c.id = t.candidate_id "
    "WHERE c.slug = %s AND t.event = %s AND t.actor = %s AND t.at = %s "
    "ORDER BY t.seq DESC LIMIT 1"
)


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
                _BACKEND, f"cannot connect to {self.where}: {_first_line(err)}"
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
                _BACKEND, f"cannot set up a session on {self.where}: {_first_line(err)}"
            ) from err
        namespace = self.schema or (row[0] if row and row[0] else "public")
        self.dialect = PostgresDialect(f"{conn.info.dbname}.{namespace}")
        return conn

    def connection(self) -> psycopg.Connection[Any]:
        """The session, reopened first if it was lost."""
        if self.closed:
            raise StoreError(_BACKEND, f"the store on {self.where} was closed; open a new one")
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
                _BACKEND,
                f"the connection to {self.where} was lost while committing; the transaction "
                "may or may not have been committed: re-read the candidate before retrying "
                f"({_first_line(err)})",
            )
        if lost and tx is not None:
            return StoreUnavailable(
                _BACKEND,
                f"the connection to {self.where} was lost mid-transaction; nothing was "
                f"committed, reconnect and retry ({_first_line(err)})",
            )
        if lost:
            return StoreUnavailable(
                _BACKEND,
                f"the connection to {self.where} was lost; nothing was written, "
                f"retry to reconnect ({_first_line(err)})",
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
                _BACKEND,
                f"waited more than {self.lock_timeout:g} s for a lock held by another writer; "
                "nothing was written, retry when it is done",
            )
        if isinstance(err, pgerrors.DeadlockDetected | pgerrors.SerializationFailure):
            return StoreError(_BACKEND, f"{_first_line(err)}; nothing was written, retry the call")
        state = getattr(err, "sqlstate", None)
        suffix = f" (SQLSTATE {state})" if state else ""
        return StoreError(_BACKEND, f"{_first_line(err)}{suffix}; nothing was written")

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
        if tx.context is not None and self.after_log is not None:
            self.after_log()  # the transaction wrote a log entry: wake the feed

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
                raise _Lost(err) from err
            raise self.translate(err, None) from err

    def unknown(self, err: BaseException) -> OutcomeUnknown:
        """The error for a call whose outcome could not be read back."""
        # One statement is its own transaction: the call was also the COMMIT.
        return OutcomeUnknown(
            _BACKEND,
            f"the connection to {self.where} was lost while committing; the transaction "
            "may or may not have been committed: re-read the candidate before retrying "
            f"({_first_line(err)})",
        )

    def close(self) -> None:
        self.closed = True
        self.conn.close()


class PostgresStore(SQLStore):
    """A :class:`~mergegate.statemachine.Store` on a PostgreSQL database.

    ``url_or_conninfo`` is a ``postgresql://`` URL or a libpq conninfo string.
    ``schema`` puts every table in that schema (created if missing) and sets
    ``search_path`` to it; by default the server's ``search_path`` decides.
    One instance holds one session and may be shared between threads, which
    then take turns (see "Threads" in docs/python-api.md). A lost connection is
    reopened on the next call. Opening applies any missing migration.
    """

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
        self.schema = schema
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self._pg = PostgresDatastore(url_or_conninfo, schema, lock_timeout, connect_timeout)
        self.where = self._pg.where
        super().__init__(self._pg, POSTGRES_MIGRATIONS)
        self._conninfo = url_or_conninfo
        self._feed_waiter: PostgresWaiter | None = None
        self._feed_lock = threading.Lock()
        self._waker = PostgresWaker(url_or_conninfo, schema)
        self._pg.after_log = self._waker.wake

    def _waiter(self) -> PostgresWaiter:
        with self._feed_lock:
            if self._feed_waiter is None:
                namespace = self._query("SELECT current_schema()")[0][0]
                self._feed_waiter = PostgresWaiter(self._conninfo, self.schema, namespace)
            return self._feed_waiter

    def close(self) -> None:
        """Send a pending wake-up, then close the session and the feed's sessions."""
        self._waker.close()
        with self._feed_lock:
            if self._feed_waiter is not None:
                self._feed_waiter.close()
        super().close()

    def move(self, move: Move) -> Moved | None:
        """The Engine's fast path in one round trip: a call of ``mergegate_move``.

        ``None`` (nothing written) when the function declined the move, or when
        another writer's row made it fail: the general path then decides.
        """
        steps = _fast_steps(move.steps)
        if not steps:
            return None
        d = self._pg.dialect
        key = move.key
        params = (
            move.slug,
            d.lock_key("candidate", move.slug),
            None if key is None else key.branch,
            None if key is None else key.sha,
            move.event.value,
            *_step_arrays(steps),
            move.expected_seq,
            move.at,
            to_pg(move.actor),
            to_pg(move.note),
            move.lease_name,
            d.lock_key("lease", move.lease_name),
            to_pg(move.owner),
            move.expires_at,
            move.main_sha,
            to_pg(move.interrupted),
        )
        with self._pg.lock:
            try:
                row = self._pg.call(_MOVE, params)
            except psycopg.IntegrityError:
                return None
            except _Lost as lost:
                row = self._landed(move, lost.err)
            if row is not None:
                self._waker.wake()
        if row is None:
            return None
        cid, branch, sha, source, seq, submitted = row
        state = State(source) if source is not None else None
        step = move.step(state)
        assert step is not None  # the function chose this step
        before = Candidate(
            cid,
            key or candidate_key(move.slug, branch, sha),
            state or step.dest,
            seq,
            submitted,
            move.at,
        )
        return move.moved(before, step)

    def _landed(self, move: Move, err: BaseException) -> Any:
        """After a lost connection: the move's row if it was committed; else raise.

        The connection can drop before the call reached the server, while the
        function ran, or during its commit. A new session reads whether the
        entry is there (the slug, event, actor and exact time of this call), so
        the caller learns which, instead of "may or may not".
        """
        try:
            row = (
                self._pg.connection()
                .execute(_LANDED, (move.slug, move.event.value, to_pg(move.actor), move.at))
                .fetchone()
            )
        except psycopg.Error:
            raise self._pg.unknown(err) from err
        if row is None:
            raise StoreUnavailable(
                _BACKEND,
                f"the connection to {self.where} was lost before the move was committed; "
                f"nothing was written, retry ({_first_line(err)})",
            ) from err
        return tuple(row)

    @property
    def _conn(self) -> psycopg.Connection[Any]:
        # The benchmarks read the session's statements through the raw connection.
        with self._pg.lock:
            return self._pg.connection()

    @property
    def backend_pid(self) -> int:
        """The server process id of this store's session, for ``pg_stat_activity``."""
        with self._pg.lock:
            return self._pg.connection().info.backend_pid

    def _engine_problems(self) -> list[str]:
        rows = self._query(
            "SELECT i.indexrelid::regclass::text FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid"
        )
        return [f"postgresql index {name} is invalid; REINDEX it" for (name,) in rows]


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
