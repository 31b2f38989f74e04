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
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar

from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    ConcurrencyConflict,
    FollowUpState,
    Lease,
    LeaseHeld,
    MergegateError,
    State,
    StoreError,
    Transition,
)

from .codec import dump_time, report_to_json
from .migrations import SQLITE_MIGRATIONS, Migration
from .rows import SQLRows

__all__ = ["SQLiteStore"]

_BACKEND = "sqlite"
_T = TypeVar("_T")


def _translate(err: sqlite3.Error, busy_timeout: float) -> MergegateError:
    """The one place sqlite3's errors become mergegate's."""
    text = str(err)
    if isinstance(err, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return StoreError(
            _BACKEND,
            f"the database stayed locked past the {busy_timeout:g} s busy timeout; "
            "nothing was written, retry when the other writer is done",
        )
    if isinstance(err, sqlite3.OperationalError) and ("full" in text or "disk" in text):
        return StoreError(_BACKEND, f"{text}; nothing was written, free disk space and retry")
    return StoreError(_BACKEND, f"{text}; nothing was written")


class _Write(Generic[_T]):
    """``BEGIN IMMEDIATE`` on enter; ``COMMIT`` on normal exit, ``ROLLBACK`` on an error.

    A class, not a ``@contextmanager`` generator: one is entered per Engine
    call, and the two nested generators cost more than the rest of the
    Python around a move's statements.
    """

    __slots__ = ("_store", "_value")

    def __init__(self, store: SQLiteStore, value: _T) -> None:
        self._store = store
        self._value = value

    def __enter__(self) -> _T:
        try:
            self._store._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise _translate(err, self._store.busy_timeout) from err
        return self._value

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._store._conn
        if exc is not None:
            conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _translate(exc, self._store.busy_timeout) from exc
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _translate(err, self._store.busy_timeout) from err


class SQLiteStore(SQLRows):
    """A :class:`~mergegate.statemachine.Store` on one SQLite file.

    One instance holds one connection; use one per thread or process. Opening
    creates the file and applies any missing migration.
    """

    backend = _BACKEND

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as err:
            raise StoreError(_BACKEND, f"cannot open {self.path}: {err}") from err
        if mode != "wal":
            raise StoreError(_BACKEND, f"{self.path} refused WAL mode ({mode}); use a local disk")
        self._migrate()

    # -- plumbing ------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            raise _translate(err, self.busy_timeout) from err

    def _write(self) -> _Write[sqlite3.Connection]:
        return _Write(self, self._conn)

    def _migrate(self) -> None:
        with self._write() as conn:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"""
            )
            done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            known = {m.version for m in SQLITE_MIGRATIONS}
            if done - known:
                raise StoreError(
                    _BACKEND,
                    f"{self.path} has schema version {max(done)}, newer than this mergegate "
                    f"knows ({max(known)}); upgrade mergegate",
                )
            for migration in SQLITE_MIGRATIONS:
                if migration.version not in done:
                    self._apply(conn, migration)

    def _apply(self, conn: sqlite3.Connection, migration: Migration) -> None:
        for statement in migration.statements:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, dump_time(_now())),
        )

    def _engine_problems(self) -> list[str]:
        problems = []
        for (line,) in self._query("PRAGMA integrity_check"):
            if line != "ok":
                problems.append(f"sqlite integrity_check: {line}")
        for row in self._query("PRAGMA foreign_key_check"):
            problems.append(f"sqlite foreign_key_check: {tuple(row)}")
        return problems

    def schema_versions(self) -> list[int]:
        """The migration versions applied to this database, in order."""
        return [v for (v,) in self._query("SELECT version FROM schema_migrations ORDER BY 1")]

    def transaction(self) -> _Write[_SQLiteTransaction]:
        """A write transaction (``BEGIN IMMEDIATE``); commits on normal exit."""
        return _Write(self, _SQLiteTransaction(self._conn, self))

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        self._conn.close()

    # -- leases (store-level writes) -----------------------------------------

    def renew_lease(self, name: str, owner: str, expires_at: datetime) -> Lease:
        """Push the expiry of ``owner``'s lease; raises LeaseHeld if ``owner`` lost it."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ?",
                (dump_time(expires_at), name, owner),
            )
            row = conn.execute(
                "SELECT name, owner, candidate_id, acquired_at, expires_at FROM leases "
                "WHERE name = ?",
                (name,),
            ).fetchone()
        if cur.rowcount != 1 or row is None:
            holder = row[1] if row else "nobody"
            raise LeaseHeld(name, holder, row[4] if row else "-")
        return self._lease(row)

    def finish_follow_up(
        self, follow_up_slug: str, state: FollowUpState, error: str | None
    ) -> None:
        """Record the result of materializing a follow-up; ``CREATED`` marks its outbox row done."""
        now = dump_time(_now())
        with self._write() as conn:
            conn.execute(
                "UPDATE follow_up_outbox SET attempts = attempts + 1, last_error = ?, "
                "done_at = CASE WHEN ? THEN COALESCE(done_at, ?) ELSE NULL END "
                "WHERE follow_up_slug = ?",
                (error, state is FollowUpState.CREATED, now, follow_up_slug),
            )
            conn.execute(
                "UPDATE integration_blocked_outcomes SET follow_up_state = ?, "
                "follow_up_error = ? WHERE follow_up_slug = ?",
                (state.value, error, follow_up_slug),
            )


class _SQLiteTransaction:
    """The write half of the store, valid only inside ``SQLiteStore.transaction``."""

    def __init__(self, conn: sqlite3.Connection, store: SQLiteStore) -> None:
        self._conn = conn
        self._store = store
        # Blocked records already read in this transaction. A block reads its
        # record before and after writing it, and the Engine reads it again for
        # the outcome; BEGIN IMMEDIATE keeps other writers out until the end,
        # and record_block and close_blocked, the only writers in here, refresh
        # or drop the entry, so a repeated read needs no query.
        self._blocked: dict[CandidateKey, BlockedRecord | None] = {}

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        return self._conn.execute(sql, params).fetchone()

    def candidate(self, slug: str) -> Candidate | None:
        row = self._one(SQLRows.CANDIDATE_BY_SLUG, (slug,))
        return None if row is None else self._store._candidate(row)

    def claim_next(self) -> str | None:
        # BEGIN IMMEDIATE already excludes every other writer until commit.
        row = self._one(SQLRows.QUEUE_HEAD, ())
        return None if row is None else str(row[0])

    def find_candidate(self, key: CandidateKey) -> Candidate | None:
        row = self._one(SQLRows.CANDIDATE_BY_KEY, (key.slug, key.branch, key.sha))
        return None if row is None else self._store._candidate(row)

    def insert_candidate(self, key: CandidateKey, at: datetime) -> Candidate:
        stamp = dump_time(at)
        try:
            cur = self._conn.execute(
                "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at) "
                "VALUES (?, ?, ?, 'pending', 0, ?, ?)",
                (key.slug, key.branch, key.sha, stamp, stamp),
            )
        except sqlite3.IntegrityError as err:
            raise ConcurrencyConflict(key, 0, None) from err
        assert cur.lastrowid is not None
        return Candidate(cur.lastrowid, key, State.PENDING, 0, at, at)

    def append(self, candidate: Candidate, entry: Transition) -> Candidate:
        stamp = dump_time(entry.at)
        try:
            self._conn.execute(
                "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at, "
                "reason, idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    candidate.id,
                    entry.seq,
                    entry.event.value,
                    entry.source.value if entry.source else None,
                    entry.dest.value,
                    entry.sha,
                    entry.actor,
                    stamp,
                    entry.reason,
                    entry.idempotency_key,
                ),
            )
        except sqlite3.IntegrityError as err:
            raise ConcurrencyConflict(candidate.key, candidate.seq, None) from err
        cur = self._conn.execute(
            "UPDATE candidates SET state = ?, seq = ?, sha = ?, updated_at = ? "
            "WHERE id = ? AND seq = ?",
            (entry.dest.value, entry.seq, entry.sha, stamp, candidate.id, candidate.seq),
        )
        if cur.rowcount != 1:
            raise ConcurrencyConflict(candidate.key, candidate.seq, None)
        key = candidate.key
        if entry.sha != key.sha:
            key = CandidateKey(key.slug, key.branch, entry.sha)
        return Candidate(candidate.id, key, entry.dest, entry.seq, candidate.submitted_at, entry.at)

    def transition_by_idempotency_key(self, candidate_id: int, key: str) -> Transition | None:
        row = self._one(
            f"SELECT {SQLRows.TRANSITION_COLUMNS} FROM transitions "
            "WHERE candidate_id = ? AND idempotency_key = ?",
            (candidate_id, key),
        )
        return None if row is None else self._store._transition(row)

    def blocked_record(self, key: CandidateKey) -> BlockedRecord | None:
        if key in self._blocked:
            return self._blocked[key]
        row = self._one(SQLRows.BLOCKED_BY_KEY, (key.slug, key.branch, key.sha))
        record = None if row is None else self._store._blocked(row)
        self._blocked[key] = record
        return record

    def follow_up_owner(self, follow_up_slug: str) -> CandidateKey | None:
        row = self._one(
            "SELECT slug, branch, sha FROM integration_blocked_outcomes WHERE follow_up_slug = ?",
            (follow_up_slug,),
        )
        return None if row is None else CandidateKey(*row)

    def latest_follow_up(self, slug: str) -> str | None:
        row = self._one(
            "SELECT follow_up_slug FROM integration_blocked_outcomes WHERE slug = ? "
            "ORDER BY id DESC LIMIT 1",
            (slug,),
        )
        return None if row is None else str(row[0])

    def record_block(
        self,
        key: CandidateKey,
        report: BlockedReport,
        *,
        seq: int,
        at: datetime,
        follow_up_slug: str,
        previous_follow_up: str | None,
    ) -> BlockedRecord:
        stamp = dump_time(at)
        known = self._blocked.get(key)
        row: tuple[int, int] | None
        if known is not None:
            row = (known.id, known.occurrences)
        else:
            row = self._one(
                "SELECT id, occurrences FROM integration_blocked_outcomes "
                "WHERE slug = ? AND branch = ? AND sha = ?",
                (key.slug, key.branch, key.sha),
            )
        if row is None:
            cur = self._conn.execute(
                "INSERT INTO integration_blocked_outcomes (slug, branch, sha, reason, main_sha, "
                "follow_up_slug, previous_follow_up, status, follow_up_state, blocked_at, "
                "last_blocked_at, occurrences) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 'pending', "
                "?, ?, 1)",
                (
                    key.slug,
                    key.branch,
                    key.sha,
                    report.reason.value,
                    report.main_sha,
                    follow_up_slug,
                    previous_follow_up,
                    stamp,
                    stamp,
                ),
            )
            assert cur.lastrowid is not None
            blocked_id, number = cur.lastrowid, 1
        else:
            blocked_id, number = row[0], row[1] + 1
            self._conn.execute(
                "UPDATE integration_blocked_outcomes SET reason = ?, main_sha = ?, "
                "last_blocked_at = ?, occurrences = ?, status = 'open', resumed_at = NULL "
                "WHERE id = ?",
                (report.reason.value, report.main_sha, stamp, number, blocked_id),
            )
        self._conn.execute(
            "INSERT INTO blocked_evidence (blocked_id, number, seq, at, report) "
            "VALUES (?, ?, ?, ?, ?)",
            (blocked_id, number, seq, stamp, report_to_json(report)),
        )
        self._conn.execute(
            "INSERT OR IGNORE INTO follow_up_outbox (follow_up_slug, blocked_id, created_at) "
            "VALUES (?, ?, ?)",
            (follow_up_slug, blocked_id, stamp),
        )
        self._blocked.pop(key, None)
        record = self.blocked_record(key)
        assert record is not None
        return record

    def close_blocked(self, key: CandidateKey, at: datetime) -> None:
        self._blocked.pop(key, None)
        self._conn.execute(
            "UPDATE integration_blocked_outcomes SET status = 'resumed', resumed_at = ? "
            "WHERE slug = ? AND branch = ? AND sha = ?",
            (dump_time(at), key.slug, key.branch, key.sha),
        )

    def lease(self, name: str) -> Lease | None:
        row = self._one(
            "SELECT name, owner, candidate_id, acquired_at, expires_at FROM leases WHERE name = ?",
            (name,),
        )
        return None if row is None else self._store._lease(row)

    def put_lease(self, lease: Lease) -> None:
        self._conn.execute(
            "INSERT INTO leases (name, owner, candidate_id, acquired_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "candidate_id = excluded.candidate_id, acquired_at = excluded.acquired_at, "
            "expires_at = excluded.expires_at",
            (
                lease.name,
                lease.owner,
                lease.candidate_id,
                dump_time(lease.acquired_at),
                dump_time(lease.expires_at),
            ),
        )

    def drop_lease(self, name: str, candidate_id: int) -> None:
        self._conn.execute(
            "DELETE FROM leases WHERE name = ? AND candidate_id = ?", (name, candidate_id)
        )


def _now() -> datetime:
    return datetime.now(UTC)
