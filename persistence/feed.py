"""The change feed's queries and wake-ups, one per backend (see mergegate.statemachine.feed).

Gap-free order, and how each backend keeps it:

- SQLite lets one writer in at a time (``BEGIN IMMEDIATE``), and ``transitions.id``
  is the rowid (``INTEGER PRIMARY KEY``), given out inside that writer's
  transaction: ids are in commit order, and the cursor is the id. Log rows are
  never deleted, so an id is never given out twice.
- PostgreSQL gives out identity values when a row is inserted, not when it
  commits: a transaction that took id 7 can commit after one that took id 8, and
  a reader that had moved its cursor past 8 would skip 7. So every log row
  records its writer's transaction id (``tx xid8 DEFAULT pg_current_xact_id()``),
  the feed is ordered by ``(tx, id)``, and a read returns only rows whose ``tx``
  is below its snapshot's ``xmin``: every transaction below ``xmin`` has ended,
  and every transaction still to write a row has a transaction id of at least
  ``xmin``, so nothing can ever appear below what a reader has read. The cost:
  the feed shows nothing newer than the oldest running write transaction of the
  cluster, however unrelated (a long transaction holds the feed back; it never
  makes it skip). The cursor packs both numbers: ``tx << 64 | id``.

Wake-ups: on PostgreSQL, after a commit that wrote a log entry, the store has
``NOTIFY mergegate_feed`` sent (the payload is the schema) by a thread and a
session of its own (:class:`PostgresWaker`), and a waiter ``LISTEN``s on a
session of its own. A notification that arrives while an
older transaction still holds the horizon back makes the waiter re-read every
``HELD_BACK_POLL`` seconds until the change shows. SQLite has no notification;
a waiter keeps a connection of its own and reads ``PRAGMA data_version`` every
``SQLITE_POLL`` seconds, which changes whenever another connection (this
store's own, or another process's) commits: a read of shared memory, no disk
access, so an idle waiter costs next to nothing, and wakes within a few
milliseconds instead of the seconds of a polling loop.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from mergegate.statemachine import StoreError

from .rows import TRANSITION, named

__all__ = [
    "HELD_BACK_POLL",
    "NOTIFY_EVERY",
    "SQLITE_POLL",
    "PostgresWaiter",
    "PostgresWaker",
    "SQLiteWaiter",
    "after_params",
    "changes_query",
    "decode",
    "encode",
    "head_query",
]

#: How often an SQLite waiter reads the data version, in seconds.
SQLITE_POLL = 0.005
#: At most one NOTIFY per this many seconds from one PostgreSQL store: SQLite's latency.
NOTIFY_EVERY = SQLITE_POLL
#: How often a PostgreSQL waiter re-reads while a notified change is held back.
HELD_BACK_POLL = 0.02
CHANNEL = "mergegate_feed"
_ID_BITS = 64

_COLUMNS = f"c.slug AS feed_slug, c.branch AS feed_branch, {named(TRANSITION, 't')}"


def encode(backend: str, tx: int, row_id: int) -> int:
    """A cursor: the id on SQLite, ``tx << 64 | id`` on PostgreSQL."""
    return row_id if backend == "sqlite" else (tx << _ID_BITS) | row_id


def decode(cursor: int) -> tuple[int, int]:
    """``(tx, id)`` of a PostgreSQL cursor."""
    return cursor >> _ID_BITS, cursor & ((1 << _ID_BITS) - 1)


def changes_query(backend: str) -> str:
    """The query of the changes after a cursor (``?`` placeholders, the limit last)."""
    if backend == "sqlite":
        return (
            f"SELECT 0 AS feed_tx, t.id AS feed_id, {_COLUMNS} FROM transitions t "
            "JOIN candidates c ON c.id = t.candidate_id WHERE t.id > ? ORDER BY t.id LIMIT ?"
        )
    return (
        f"SELECT t.tx::text AS feed_tx, t.id AS feed_id, {_COLUMNS} FROM transitions t "
        "JOIN candidates c ON c.id = t.candidate_id "
        "WHERE t.tx < pg_snapshot_xmin(pg_current_snapshot()) "
        "AND (t.tx, t.id) > (?::text::xid8, ?) ORDER BY t.tx, t.id LIMIT ?"
    )


def head_query(backend: str) -> str:
    """The query of the newest readable change's ``(tx, id)``."""
    if backend == "sqlite":
        return "SELECT 0, id FROM transitions ORDER BY id DESC LIMIT 1"
    return (
        "SELECT tx::text, id FROM transitions "
        "WHERE tx < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY tx DESC, id DESC LIMIT 1"
    )


def after_params(backend: str, cursor: int) -> tuple[Any, ...]:
    """The parameters of ``changes_query`` for ``cursor``, the limit left out."""
    if backend == "sqlite":
        return (cursor,)
    tx, row_id = decode(cursor)
    return (str(tx), row_id)


class _PerThread:
    """One waiting connection per thread (a connection is not shared while it waits)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self.closed = False

    def get(self) -> Any | None:
        return getattr(self._local, "conn", None)

    def keep(self, conn: Any) -> None:
        with self._lock:
            if self.closed:
                conn.close()
                raise StoreError("feed", "the store was closed")
            self._local.conn = conn
            self._all.append(conn)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()


class SQLiteWaiter:
    """Waits for a commit to one SQLite file by its data version (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conns = _PerThread()

    def _conn(self) -> sqlite3.Connection:
        conn = self._conns.get()
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conns.keep(conn)
        return conn

    def wait(self, cursor: int, timeout: float, *, controls: bool = False) -> bool:
        """Wait for a log entry after ``cursor``, or (``controls``) a control after that id."""
        deadline = time.monotonic() + max(0.0, timeout)
        conn = self._conn()
        table = "queue_controls" if controls else "transitions"
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            while True:
                # Read after taking the version: a commit in between changes it.
                if conn.execute(f"SELECT 1 FROM {table} WHERE id > ?", (cursor,)).fetchone():
                    return True
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    time.sleep(min(SQLITE_POLL, left))
                    now = conn.execute("PRAGMA data_version").fetchone()[0]
                    if now != version:
                        version = now
                        break
        except sqlite3.Error as err:
            raise StoreError("sqlite", f"cannot wait for a change: {err}") from err

    def close(self) -> None:
        self._conns.close()


class PostgresWaiter:
    """Waits on ``LISTEN mergegate_feed`` on a session of its own, per thread."""

    def __init__(self, conninfo: str, schema: str | None, namespace: str) -> None:
        self._conninfo = conninfo
        self._schema = schema
        self.namespace = namespace
        self._conns = _PerThread()

    def _conn(self) -> Any:
        import psycopg  # noqa: PLC0415  (the optional extra)
        from psycopg import sql  # noqa: PLC0415

        conn = self._conns.get()
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            if self._schema is not None:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            conn.close()  # not yet kept, so nothing else would ever close it
            raise
        self._conns.keep(conn)
        return conn

    def _readable(self, conn: Any, cursor: int) -> bool:
        tx, row_id = decode(cursor)
        row = conn.execute(
            "SELECT 1 FROM transitions WHERE tx < pg_snapshot_xmin(pg_current_snapshot()) "
            "AND (tx, id) > (%s::text::xid8, %s) LIMIT 1",
            (str(tx), row_id),
        ).fetchone()
        return row is not None

    def _control_after(self, conn: Any, after: int) -> bool:
        # Controls are written under the queue's lock, one at a time: ids in commit order.
        row = conn.execute("SELECT 1 FROM queue_controls WHERE id > %s LIMIT 1", (after,))
        return row.fetchone() is not None

    def wait(self, cursor: int, timeout: float, *, controls: bool = False) -> bool:
        """Wait for a log entry after ``cursor``, or (``controls``) a control after that id."""
        import psycopg  # noqa: PLC0415

        deadline = time.monotonic() + max(0.0, timeout)
        try:
            conn = self._conn()
            readable = self._control_after if controls else self._readable
            # LISTEN is in place before this read: a commit after it notifies us.
            if readable(conn, cursor):
                return True
            notified = False
            while (left := deadline - time.monotonic()) > 0:
                # Held back (notified, not yet readable): re-read on a short beat.
                step = min(left, HELD_BACK_POLL) if notified else left
                for note in conn.notifies(timeout=step, stop_after=1):
                    notified = notified or note.payload == self.namespace
                if notified and readable(conn, cursor):
                    return True
            return False
        except psycopg.Error as err:
            raise StoreError("postgresql", f"cannot wait for a change: {err}") from err

    def close(self) -> None:
        self._conns.close()


class PostgresWaker:
    """Sends ``NOTIFY mergegate_feed`` after the store's moves, off the moving session.

    Why not a NOTIFY inside the move (a trigger): PostgreSQL serializes the
    commits of notifying transactions, a lock held from pre-commit until the
    commit record is flushed, so every move of every session would wait for the
    others' flushes (measured: 0.40 of the throughput of four writing sessions).
    Why not right after the commit on the same session: a second round trip
    per move. So a thread of the store sends it, on a session of its own whose
    commits do not wait for their flush (``synchronous_commit off``: a wake-up
    lost to a crash costs a waiter its timeout, never a change, which is in the
    log). Wake-ups are coalesced: at most one NOTIFY goes out per
    ``NOTIFY_EVERY`` seconds, the latency an SQLite waiter has by its poll, and
    wake-ups that arrive meanwhile ride on the next. A busy integrator moving a
    thousand times a second sent a NOTIFY for nearly every move, each one a
    transaction of the server's and a thread switch of ours: with them it made
    0.78 of the moves per second it made without them (alternating, one run).
    :meth:`close` sends a pending one before it returns, so a short-lived
    process (``mergegate submit``) still wakes the waiters.
    """

    def __init__(self, conninfo: str, schema: str | None) -> None:
        self._conninfo = conninfo
        self._schema = schema
        self._pending = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: Any = None
        self._closing = False
        self._want = False

    def wake(self) -> None:
        """Ask for a NOTIFY; returns at once."""
        with self._lock:
            if self._closing:
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="mergegate-feed-waker", daemon=True
                )
                self._thread.start()
            self._want = True
            self._pending.set()

    def _send(self) -> None:
        import psycopg  # noqa: PLC0415
        from psycopg import sql  # noqa: PLC0415

        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = psycopg.connect(self._conninfo, autocommit=True)
                self._conn.execute("SET synchronous_commit TO off")
                if self._schema is not None:
                    self._conn.execute(
                        sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema))
                    )
            self._conn.execute(f"SELECT pg_notify('{CHANNEL}', current_schema())")
        except psycopg.Error:
            # The server is gone or refused: waiters fall back on their timeout.
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    def _run(self) -> None:
        sent = -NOTIFY_EVERY
        while True:
            self._pending.wait()
            # The window since the last NOTIFY gathers the wake-ups that follow it.
            # The loop's own sleep, not the Event's wait: close() must not cut it short
            # into a second NOTIFY, and it lasts at most NOTIFY_EVERY.
            rest = sent + NOTIFY_EVERY - time.monotonic()
            if rest > 0:
                time.sleep(rest)
            with self._lock:
                self._pending.clear()
                want, self._want = self._want, False
                closing = self._closing
            if want:
                self._send()
                sent = time.monotonic()
            if closing:
                return

    def close(self) -> None:
        """Send a wake-up still pending, stop the thread and close its session."""
        with self._lock:
            self._closing = True
            thread = self._thread
            # Wake the thread once more: it sends what is pending, then stops.
            self._pending.set()
        if thread is not None:
            thread.join(timeout=10)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
