"""The read side shared by the SQL stores: queries and row-to-record mapping.

Queries use ``?`` placeholders; a store whose driver wants another style
rewrites them in its ``_query``. Mapping accepts both SQLite's text and
PostgreSQL's native values for times and JSON.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from mergegate.statemachine import (
    BlockedRecord,
    Candidate,
    CandidateKey,
    Event,
    FollowUpJob,
    FollowUpState,
    Lease,
    Occurrence,
    Reason,
    State,
    Transition,
)

from .codec import dump_time, load_report, load_time

__all__ = ["SQLRows"]


@functools.lru_cache(maxsize=4096)
def _key(slug: str, branch: str, sha: str) -> CandidateKey:
    # The Engine reads a candidate back on every move it makes; keys are
    # immutable, so each identity is validated once per process, not per read.
    return CandidateKey(slug, branch, sha)


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else load_time(value)


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else dump_time(value)


class SQLRows:
    """Read queries of the Store protocol, over an abstract ``_query``."""

    CANDIDATE_COLUMNS = "id, slug, branch, sha, state, seq, submitted_at, updated_at"
    TRANSITION_COLUMNS = (
        "candidate_id, seq, event, source, dest, sha, actor, at, reason, idempotency_key"
    )
    BLOCKED_COLUMNS = (
        "id, slug, branch, sha, reason, main_sha, follow_up_slug, previous_follow_up, status, "
        "follow_up_state, follow_up_error, blocked_at, last_blocked_at, occurrences"
    )
    # The active candidate first, else the newest integrated one.
    CANDIDATE_BY_SLUG = (
        f"SELECT {CANDIDATE_COLUMNS} FROM candidates WHERE slug = ? "
        "ORDER BY CASE WHEN state = 'integrated' THEN 1 ELSE 0 END, id DESC LIMIT 1"
    )
    QUEUE_HEAD = (
        "SELECT slug FROM candidates WHERE state IN ('pending', 'retry') "
        "ORDER BY updated_at, id LIMIT 1"
    )
    CANDIDATE_BY_KEY = (
        f"SELECT {CANDIDATE_COLUMNS} FROM candidates "
        "WHERE slug = ? AND branch = ? AND sha = ? ORDER BY id DESC LIMIT 1"
    )
    BLOCKED_BY_KEY = (
        f"SELECT {BLOCKED_COLUMNS} FROM integration_blocked_outcomes "
        "WHERE slug = ? AND branch = ? AND sha = ?"
    )

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    # -- mapping -------------------------------------------------------------

    @staticmethod
    def _candidate(row: Any) -> Candidate:
        return Candidate(
            row[0],
            _key(row[1], row[2], row[3]),
            State(row[4]),
            row[5],
            _time(row[6]),
            _time(row[7]),
        )

    @staticmethod
    def _transition(row: Any) -> Transition:
        return Transition(
            candidate_id=row[0],
            seq=row[1],
            event=Event(row[2]),
            source=State(row[3]) if row[3] else None,
            dest=State(row[4]),
            sha=row[5],
            actor=row[6],
            at=_time(row[7]),
            reason=row[8],
            idempotency_key=row[9],
        )

    @staticmethod
    def _blocked(row: Any) -> BlockedRecord:
        return BlockedRecord(
            id=row[0],
            key=_key(row[1], row[2], row[3]),
            reason=Reason(row[4]),
            main_sha=row[5],
            follow_up_slug=row[6],
            previous_follow_up=row[7],
            status=row[8],
            follow_up_state=FollowUpState(row[9]),
            follow_up_error=row[10],
            blocked_at=_time(row[11]),
            last_blocked_at=_time(row[12]),
            occurrences=row[13],
        )

    @staticmethod
    def _lease(row: Any) -> Lease:
        return Lease(row[0], row[1], row[2], _time(row[3]), _time(row[4]))

    @staticmethod
    def _occurrence(row: Any) -> Occurrence:
        data = row[4] if isinstance(row[4], dict) else json.loads(row[4])
        return Occurrence(row[0], row[1], row[2], load_report(data), _time(row[3]))

    # -- reads ---------------------------------------------------------------

    def candidate(self, slug: str) -> Candidate | None:
        rows = self._query(self.CANDIDATE_BY_SLUG, (slug,))
        return self._candidate(rows[0]) if rows else None

    def candidate_by_id(self, candidate_id: int) -> Candidate | None:
        rows = self._query(
            f"SELECT {self.CANDIDATE_COLUMNS} FROM candidates WHERE id = ?", (candidate_id,)
        )
        return self._candidate(rows[0]) if rows else None

    def candidates(self, state: State | None = None) -> list[Candidate]:
        if state is None:
            rows = self._query(f"SELECT {self.CANDIDATE_COLUMNS} FROM candidates ORDER BY id")
        else:
            rows = self._query(
                f"SELECT {self.CANDIDATE_COLUMNS} FROM candidates WHERE state = ? ORDER BY id",
                (state.value,),
            )
        return [self._candidate(r) for r in rows]

    def next_candidate(self) -> Candidate | None:
        rows = self._query(
            f"SELECT {self.CANDIDATE_COLUMNS} FROM candidates "
            "WHERE state IN ('pending', 'retry') ORDER BY updated_at, id LIMIT 1"
        )
        return self._candidate(rows[0]) if rows else None

    def history(self, candidate_id: int, since: datetime | None = None) -> list[Transition]:
        sql = f"SELECT {self.TRANSITION_COLUMNS} FROM transitions WHERE candidate_id = ?"
        params: tuple[Any, ...] = (candidate_id,)
        if since is not None:
            sql += " AND at >= ?"
            params += (self._param_time(since),)
        return [self._transition(r) for r in self._query(sql + " ORDER BY seq", params)]

    def history_of(self, slug: str, since: datetime | None = None) -> list[Transition]:
        cols = ", ".join(f"t.{c.strip()}" for c in self.TRANSITION_COLUMNS.split(","))
        sql = (
            f"SELECT {cols} FROM transitions t JOIN candidates c ON c.id = t.candidate_id "
            "WHERE c.slug = ?"
        )
        params: tuple[Any, ...] = (slug,)
        if since is not None:
            sql += " AND t.at >= ?"
            params += (self._param_time(since),)
        sql += " ORDER BY t.candidate_id, t.seq"
        return [self._transition(r) for r in self._query(sql, params)]

    def log(self) -> Iterator[Transition]:
        rows = self._query(
            f"SELECT {self.TRANSITION_COLUMNS} FROM transitions ORDER BY candidate_id, seq"
        )
        return (self._transition(r) for r in rows)

    def edge_counts(self) -> dict[tuple[State | None, Event, State], int]:
        rows = self._query(
            "SELECT source, event, dest, COUNT(*) FROM transitions GROUP BY source, event, dest"
        )
        return {(State(r[0]) if r[0] else None, Event(r[1]), State(r[2])): int(r[3]) for r in rows}

    def blocked_record(self, key: CandidateKey) -> BlockedRecord | None:
        rows = self._query(self.BLOCKED_BY_KEY, (key.slug, key.branch, key.sha))
        return self._blocked(rows[0]) if rows else None

    def blocked_record_by_id(self, blocked_id: int) -> BlockedRecord | None:
        rows = self._query(
            f"SELECT {self.BLOCKED_COLUMNS} FROM integration_blocked_outcomes WHERE id = ?",
            (blocked_id,),
        )
        return self._blocked(rows[0]) if rows else None

    def blocked_records(
        self, since: datetime | None = None, reason: Reason | None = None
    ) -> list[BlockedRecord]:
        sql = f"SELECT {self.BLOCKED_COLUMNS} FROM integration_blocked_outcomes"
        where, params = [], []
        if reason is not None:
            where.append("reason = ?")
            params.append(reason.value)
        if since is not None:
            where.append("last_blocked_at >= ?")
            params.append(self._param_time(since))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY last_blocked_at DESC, id DESC"
        return [self._blocked(r) for r in self._query(sql, tuple(params))]

    def occurrences(self, blocked_id: int) -> list[Occurrence]:
        rows = self._query(
            "SELECT blocked_id, number, seq, at, report FROM blocked_evidence "
            "WHERE blocked_id = ? ORDER BY number",
            (blocked_id,),
        )
        return [self._occurrence(r) for r in rows]

    def follow_up_jobs(self, *, include_done: bool = False) -> list[FollowUpJob]:
        sql = "SELECT id, follow_up_slug, blocked_id, attempts, done_at FROM follow_up_outbox"
        if not include_done:
            sql += " WHERE done_at IS NULL"
        rows = self._query(sql + " ORDER BY id")
        return [FollowUpJob(r[0], r[1], r[2], r[3], r[4] is not None) for r in rows]

    def leases(self) -> list[Lease]:
        rows = self._query(
            "SELECT name, owner, candidate_id, acquired_at, expires_at FROM leases ORDER BY name"
        )
        return [self._lease(r) for r in rows]

    def integrity_problems(self) -> list[str]:
        """Cross-table checks every SQL store must pass; empty when sound."""
        problems = []
        for cid, seq, count, top in self._query(
            "SELECT c.id, c.seq, COUNT(t.seq), COALESCE(MAX(t.seq), 0) FROM candidates c "
            "LEFT JOIN transitions t ON t.candidate_id = c.id GROUP BY c.id, c.seq"
        ):
            if not seq == count == top:
                problems.append(f"candidate {cid}: seq {seq}, {count} log entries, last seq {top}")
        for bid, occurrences, count in self._query(
            "SELECT b.id, b.occurrences, COUNT(e.id) FROM integration_blocked_outcomes b "
            "LEFT JOIN blocked_evidence e ON e.blocked_id = b.id GROUP BY b.id, b.occurrences"
        ):
            if occurrences != count:
                problems.append(f"blocked outcome {bid}: {occurrences} occurrences, {count} rows")
        for (slug,) in self._query(
            "SELECT b.follow_up_slug FROM integration_blocked_outcomes b "
            "LEFT JOIN follow_up_outbox o ON o.follow_up_slug = b.follow_up_slug "
            "WHERE o.id IS NULL"
        ):
            problems.append(f"follow-up {slug} has no outbox row")
        for (name,) in self._query(
            "SELECT l.name FROM leases l LEFT JOIN candidates c ON c.id = l.candidate_id "
            "WHERE l.candidate_id IS NOT NULL AND (c.id IS NULL OR c.state <> 'applying')"
        ):
            problems.append(f"lease {name} is held for a candidate that is not applying")
        problems.extend(self._engine_problems())
        return problems

    def _engine_problems(self) -> list[str]:
        return []

    def _param_time(self, value: datetime) -> Any:
        return _stamp(value)
