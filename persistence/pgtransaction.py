"""The write half of the PostgreSQL store: one transaction, in pipeline mode.

Reads wait for their rows; writes whose results nobody needs are queued and
travel with the next read or with the ``COMMIT``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, suppress
from datetime import datetime
from functools import lru_cache
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

import psycopg
from psycopg.types.json import Jsonb

from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    Lease,
    State,
    Transition,
)

from .codec import dump_report
from .pgtext import json_to_pg, to_pg
from .rows import SQLRows

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = ["LEASE_COLUMNS", "PostgresTransaction", "WriteTransaction", "pg"]

LEASE_COLUMNS = "name, owner, candidate_id, acquired_at, expires_at"


@lru_cache(maxsize=256)
def pg(query: str) -> str:
    """SQLRows' ``?`` placeholders in psycopg's ``%s`` style."""
    return query.replace("%", "%%").replace("?", "%s")


_APPEND = (
    # The UPDATE matches no row when another writer moved the candidate since
    # it was read; the NULL candidate_id then fails NOT NULL. So a stale write
    # fails inside this one statement and the pipeline need not wait for a
    # row count. A duplicate seq fails the (candidate_id, seq) unique instead.
    "WITH moved AS (UPDATE candidates SET state = %s, seq = %s, sha = %s, updated_at = %s "
    "WHERE id = %s AND seq = %s RETURNING id) "
    "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at, reason, "
    "idempotency_key) VALUES ((SELECT id FROM moved), %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

_CANDIDATE_WITH_BLOCKED = (
    f"SELECT c.*, {', '.join(f'b.{c.strip()}' for c in SQLRows.BLOCKED_COLUMNS.split(','))}, "
    "(SELECT follow_up_slug FROM integration_blocked_outcomes WHERE slug = c.slug "
    "ORDER BY id DESC LIMIT 1) "
    f"FROM ({pg(SQLRows.CANDIDATE_BY_SLUG)}) c LEFT JOIN integration_blocked_outcomes b "
    "ON b.slug = c.slug AND b.branch = c.branch AND b.sha = c.sha"
)

_RECORD_BLOCK = (
    "WITH b AS (INSERT INTO integration_blocked_outcomes AS o (slug, branch, sha, reason, "
    "main_sha, follow_up_slug, previous_follow_up, status, follow_up_state, blocked_at, "
    "last_blocked_at, occurrences) VALUES (%s, %s, %s, %s, %s, %s, %s, 'open', 'pending', %s, "
    "%s, 1) ON CONFLICT (slug, branch, sha) DO UPDATE SET reason = excluded.reason, "
    "main_sha = excluded.main_sha, last_blocked_at = excluded.last_blocked_at, "
    "occurrences = o.occurrences + 1, status = 'open', resumed_at = NULL "
    f"RETURNING {SQLRows.BLOCKED_COLUMNS}), "
    "e AS (INSERT INTO blocked_evidence (blocked_id, number, seq, at, report) "
    "SELECT id, occurrences, %s, %s, %s FROM b), "
    "f AS (INSERT INTO follow_up_outbox (follow_up_slug, blocked_id, created_at) "
    "SELECT follow_up_slug, id, %s FROM b ON CONFLICT (follow_up_slug) DO NOTHING) "
    f"SELECT {SQLRows.BLOCKED_COLUMNS} FROM b"
)


class PostgresTransaction:
    """The write half of the store, valid only inside ``PostgresStore.transaction``.

    Writes are queued in the pipeline; reads wait for their rows, which also
    sends everything queued before them. Reading a candidate locks its slug
    and fetches, in the same round trip, its blocked outcome and the slug's
    newest follow-up: only transactions holding the slug lock change those
    rows, so they are remembered, and kept current, until the transaction
    ends. (``follow_up_state``, which a drain may update meanwhile, is as of
    that first read.)
    """

    def __init__(self, conn: psycopg.Connection[Any], store: PostgresStore) -> None:
        self._conn = conn
        # One cursor for the whole transaction: making one per statement costs
        # more client time than the statement's share of the round trip.
        self._cursor = conn.cursor()
        self._store = store
        self._locked: set[int] = set()
        self._candidates: dict[str, Candidate | None] = {}
        self._blocked: dict[CandidateKey, BlockedRecord | None] = {}
        self._latest: dict[str, str | None] = {}
        self.committing = False
        # What a conflict the database reports later is about: (identity, seq).
        self.context: tuple[CandidateKey, int] | None = None

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> None:
        """Queue a statement whose result nobody needs."""
        self._cursor.execute(query, params)

    def _one(self, query: str, params: tuple[Any, ...]) -> Any:
        return self._cursor.execute(query, params).fetchone()

    def _lock(self, *parts: str) -> None:
        key = self._store._lock(*parts)
        if key not in self._locked:
            self._locked.add(key)
            self.execute("SELECT pg_advisory_xact_lock(%s)", (key,))

    def candidate(self, slug: str) -> Candidate | None:
        if slug in self._candidates:
            return self._candidates[slug]
        self._lock("candidate", slug)
        row = self._one(_CANDIDATE_WITH_BLOCKED, (slug,))
        found = None
        if row is not None:
            found = self._store._candidate(row)
            self._blocked[found.key] = None if row[8] is None else self._store._blocked(row[8:22])
            self._latest[slug] = row[22]
        self._candidates[slug] = found
        return found

    def claim_next(self) -> str | None:
        # SKIP LOCKED: a row another integrator's transaction holds is passed
        # over, not waited for, so concurrent claims never pick the same one.
        row = self._one(pg(SQLRows.QUEUE_HEAD) + " FOR UPDATE SKIP LOCKED", ())
        return None if row is None else str(row[0])

    def find_candidate(self, key: CandidateKey) -> Candidate | None:
        row = self._one(pg(SQLRows.CANDIDATE_BY_KEY), (key.slug, key.branch, key.sha))
        return None if row is None else self._store._candidate(row)

    def insert_candidate(self, key: CandidateKey, at: datetime) -> Candidate:
        self.context = (key, 0)
        row = self._one(
            "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at) "
            "VALUES (%s, %s, %s, 'pending', 0, %s, %s) RETURNING id",
            (key.slug, key.branch, key.sha, at, at),
        )
        created = Candidate(row[0], key, State.PENDING, 0, at, at)
        self._candidates[key.slug] = created
        self._blocked[key] = None
        return created

    def append(self, candidate: Candidate, entry: Transition) -> Candidate:
        self.context = (candidate.key, candidate.seq)
        self.execute(
            _APPEND,
            (
                entry.dest.value,
                entry.seq,
                entry.sha,
                entry.at,
                candidate.id,
                candidate.seq,
                entry.seq,
                entry.event.value,
                entry.source.value if entry.source else None,
                entry.dest.value,
                entry.sha,
                to_pg(entry.actor),
                entry.at,
                to_pg(entry.reason),
                to_pg(entry.idempotency_key),
            ),
        )
        key = candidate.key
        if entry.sha != key.sha:
            key = CandidateKey(key.slug, key.branch, entry.sha)
        moved = Candidate(
            candidate.id, key, entry.dest, entry.seq, candidate.submitted_at, entry.at
        )
        self._candidates[key.slug] = moved
        return moved

    def transition_by_idempotency_key(self, candidate_id: int, key: str) -> Transition | None:
        row = self._one(
            f"SELECT {SQLRows.TRANSITION_COLUMNS} FROM transitions "
            "WHERE candidate_id = %s AND idempotency_key = %s",
            (candidate_id, to_pg(key)),
        )
        return None if row is None else self._store._transition(row)

    def blocked_record(self, key: CandidateKey) -> BlockedRecord | None:
        if key not in self._blocked:
            row = self._one(pg(SQLRows.BLOCKED_BY_KEY), (key.slug, key.branch, key.sha))
            self._blocked[key] = None if row is None else self._store._blocked(row)
        return self._blocked[key]

    def follow_up_owner(self, follow_up_slug: str) -> CandidateKey | None:
        row = self._one(
            "SELECT slug, branch, sha FROM integration_blocked_outcomes WHERE follow_up_slug = %s",
            (follow_up_slug,),
        )
        return None if row is None else CandidateKey(*row)

    def latest_follow_up(self, slug: str) -> str | None:
        if slug not in self._latest:
            row = self._one(
                "SELECT follow_up_slug FROM integration_blocked_outcomes WHERE slug = %s "
                "ORDER BY id DESC LIMIT 1",
                (slug,),
            )
            self._latest[slug] = None if row is None else str(row[0])
        return self._latest[slug]

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
        row = self._one(
            _RECORD_BLOCK,
            (
                key.slug,
                key.branch,
                key.sha,
                report.reason.value,
                report.main_sha,
                follow_up_slug,
                previous_follow_up,
                at,
                at,
                seq,
                at,
                Jsonb(json_to_pg(dump_report(report))),
                at,
            ),
        )
        record = self._store._blocked(row)
        self._blocked[key] = record
        if record.occurrences == 1:
            self._latest[key.slug] = record.follow_up_slug
        return record

    def close_blocked(self, key: CandidateKey, at: datetime) -> None:
        self._blocked.pop(key, None)  # read it again if asked: status and resumed_at change
        self.execute(
            "UPDATE integration_blocked_outcomes SET status = 'resumed', resumed_at = %s "
            "WHERE slug = %s AND branch = %s AND sha = %s",
            (at, key.slug, key.branch, key.sha),
        )

    def lease(self, name: str) -> Lease | None:
        # The lease row may not exist yet, so a row lock could not stop two
        # integrators from both seeing it free; the advisory lock can.
        self._lock("lease", name)
        row = self._one(f"SELECT {LEASE_COLUMNS} FROM leases WHERE name = %s", (name,))
        return None if row is None else self._store._lease(row)

    def put_lease(self, lease: Lease) -> None:
        self.execute(
            f"INSERT INTO leases ({LEASE_COLUMNS}) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
            "candidate_id = excluded.candidate_id, acquired_at = excluded.acquired_at, "
            "expires_at = excluded.expires_at",
            (
                lease.name,
                to_pg(lease.owner),
                lease.candidate_id,
                lease.acquired_at,
                lease.expires_at,
            ),
        )

    def drop_lease(self, name: str, candidate_id: int) -> None:
        self.execute(
            "DELETE FROM leases WHERE name = %s AND candidate_id = %s", (name, candidate_id)
        )


class WriteTransaction:
    """The context of one write transaction, in pipeline mode.

    BEGIN and COMMIT are plain pipelined statements rather than psycopg's
    ``transaction()``, which syncs at COMMIT and again when the pipeline ends:
    this way the COMMIT travels with the queued writes, in one round trip. A
    class rather than a generator, because one is entered per Engine call.
    """

    __slots__ = ("_conn", "_pipeline", "_store", "_tx")

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._conn = store._connection()
        self._tx = PostgresTransaction(self._conn, store)
        self._pipeline: AbstractContextManager[Any] | None = None

    def __enter__(self) -> PostgresTransaction:
        try:
            self._pipeline = self._conn.pipeline()
            self._pipeline.__enter__()
            self._conn.execute("BEGIN")
        except BaseException as exc:
            self._fail(exc)
        return self._tx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            try:
                self._tx.committing = True
                self._conn.execute("COMMIT")
                self._end(None)
            except BaseException as err:
                self._fail(err)
            return
        if isinstance(exc, psycopg.Error):
            self._fail(exc)
        # Anything else (an Engine error, a KeyboardInterrupt) propagates as it is.
        with suppress(psycopg.Error):
            self._end(exc)
        _roll_back(self._conn)

    def _end(self, exc: BaseException | None) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            # Given an exception, psycopg logs any error of its own instead of raising it.
            pipeline.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    def _fail(self, exc: BaseException) -> NoReturn:
        with suppress(psycopg.Error):
            self._end(exc)
        _roll_back(self._conn)
        if isinstance(exc, psycopg.Error):
            raise self._store._translate(exc, self._tx) from exc
        raise exc


def _roll_back(conn: psycopg.Connection[Any]) -> None:
    """End a failed transaction; a lost connection has ended it already.

    If even ROLLBACK fails, the session is in a state nobody should reuse:
    close it (the server then rolls back) and let the next call reconnect.
    """
    if conn.broken or conn.closed:
        return
    try:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
    except psycopg.Error:
        conn.close()
