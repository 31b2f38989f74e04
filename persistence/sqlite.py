"""The embedded SQLite store: one file, one host.

Durability settings are the point of this module: WAL, ``synchronous=FULL``
(a commit is on disk when ``COMMIT`` returns), a busy timeout, and
``BEGIN IMMEDIATE`` for every write. A plain ``BEGIN`` that later writes fails
at once with SQLITE_BUSY when another writer is active, whatever the timeout,
because SQLite cannot upgrade a read snapshot that has gone stale.

WAL needs shared memory, so the file must not live on a network file system;
several hosts need the PostgreSQL store.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from mergegate.statemachine import (
    ConcurrencyConflict,
    MergegateError,
    StoreError,
    StoreUnavailable,
)

from .dialect import Dialect
from .feed import SQLiteWaiter
from .migrations import SQLITE_MIGRATIONS, SQLITE_TYPES
from .sqlstore import SQLStore
from .sqltransaction import SQLTransaction

__all__ = ["SQLiteStore"]

_BACKEND = "sqlite"
# Constraint failures that mean another writer got there first (SQLite names
# the columns, not the index): a second active candidate of one slug, a
# duplicate or stale (NULL candidate) log entry.
_CONFLICTS = ("candidates.slug", "transitions.candidate_id", "transitions.idempotency_key")


class SQLiteDialect(Dialect):
    """SQLite speaks the portable defaults: ``?``, text times, JSON text, no locks."""

    backend = _BACKEND
    types = SQLITE_TYPES


class SQLiteDatastore:
    """One connection to one SQLite file, shared by the threads that share the store."""

    dialect = SQLiteDialect()

    def __init__(self, path: Path, busy_timeout: float) -> None:
        self.path = path
        self.where = str(path)
        self.busy_timeout = busy_timeout
        self.lock = threading.RLock()
        try:
            # check_same_thread=False: the lock, not the thread, guards the connection.
            self.conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self.conn.row_factory = sqlite3.Row
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.OperationalError as err:
            # The file cannot be opened or is locked now: worth a retry.
            raise StoreUnavailable(_BACKEND, f"cannot open {path}: {err}") from err
        except sqlite3.Error as err:
            # Not a database at all (or a corrupt one): a retry would fail the same way.
            raise StoreError(_BACKEND, f"cannot open {path}: {err}") from err
        if mode != "wal":
            self.conn.close()
            raise StoreError(_BACKEND, f"{path} refused WAL mode ({mode}); use a local disk")

    def translate(self, err: Exception, tx: SQLTransaction | None) -> MergegateError:
        text = str(err)
        if (
            isinstance(err, sqlite3.IntegrityError)
            and tx is not None
            and tx.context is not None
            and any(name in text for name in _CONFLICTS)
        ):
            key, seq = tx.context
            return ConcurrencyConflict(key, seq, None)
        if isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return StoreUnavailable(
                _BACKEND,
                f"the database stayed locked past the {self.busy_timeout:g} s busy timeout; "
                "nothing was written, retry when the other writer is done",
            )
        if isinstance(err, sqlite3.OperationalError) and ("full" in text or "disk" in text):
            return StoreError(_BACKEND, f"{text}; nothing was written, free disk space and retry")
        return StoreError(_BACKEND, f"{text}; nothing was written")

    def query(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            return self.conn.execute(query, params).fetchall()
        except sqlite3.Error as err:
            raise self.translate(err, None) from err

    def begin(self) -> Any:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise self.translate(err, None) from err
        # The connection serves as the cursor: its execute() makes the cursor
        # a statement needs, cheaper than keeping one of our own.
        return self.conn

    def commit(self, tx: SQLTransaction) -> None:
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as err:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise self.translate(err, tx) from err

    def abort(self, exc: BaseException, tx: SQLTransaction) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise self.translate(exc, tx) from exc

    def prepare_migration(self, tx: SQLTransaction) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already keeps other openers out."""

    def recorded_version(self) -> int | None:
        try:
            row = self.conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        except sqlite3.OperationalError:
            return None  # no schema_migrations table: a new file
        return None if row is None else row[0]

    def close(self) -> None:
        self.conn.close()

    def integrity(self) -> list[str]:
        problems = []
        for (line,) in self.query("PRAGMA integrity_check", ()):
            if line != "ok":
                problems.append(f"sqlite integrity_check: {line}")
        for row in self.query("PRAGMA foreign_key_check", ()):
            problems.append(f"sqlite foreign_key_check: {tuple(row)}")
        return problems


class SQLiteStore(SQLStore):
    """A :class:`~mergegate.statemachine.Store` on one SQLite file.

    One instance holds one connection and may be shared between threads, which
    then take turns (see "Threads" in docs/python-api.md). Opening creates the
    file and applies any missing migration.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._sqlite = SQLiteDatastore(self.path, busy_timeout)
        super().__init__(self._sqlite, SQLITE_MIGRATIONS)
        self._feed_waiter: SQLiteWaiter | None = None
        self._feed_lock = threading.Lock()

    def _waiter(self) -> SQLiteWaiter:
        with self._feed_lock:
            if self._feed_waiter is None:
                self._feed_waiter = SQLiteWaiter(self.path)
            return self._feed_waiter

    def close(self) -> None:
        """Close the connection and the feed's waiting connections."""
        with self._feed_lock:
            if self._feed_waiter is not None:
                self._feed_waiter.close()
        super().close()

    @property
    def _conn(self) -> sqlite3.Connection:
        # The benchmarks read WAL statistics through the raw connection.
        return self._sqlite.conn

    def _engine_problems(self) -> list[str]:
        with self._sqlite.lock:
            return self._sqlite.integrity()
