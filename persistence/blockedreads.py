"""The blocked outcomes' reads of a SQL store: the records, their evidence, their follow-ups.

What ``blocked``, ``show`` and the follow-up materializer read: the outcome of
each blocked identity, the occurrences of its evidence, and the outbox of
follow-ups still to be made. The writes are the transaction's
(:mod:`.txblocked`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from mergegate.statemachine import BlockedRecord, CandidateKey, Occurrence, Reason
from mergegate.statemachine.records import FollowUpJob

from .rows import BLOCKED, Mapper, named
from .txblocked import BLOCKED_BY_KEY

__all__ = ["BlockedReads"]

# The statuses of a blocked outcome (the schema's CHECK), safe to write into SQL.
_STATUSES = frozenset({"open", "resumed"})


class _Host(Protocol):
    _map: Mapper

    def _query(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]: ...

    def _time(self, value: datetime) -> Any: ...


class BlockedReads:
    """Mixed into :class:`~.sqlstore.SQLStore`: the blocked outcomes' Store reads."""

    def blocked_record(self: _Host, key: CandidateKey) -> BlockedRecord | None:
        rows = self._query(BLOCKED_BY_KEY, (key.slug, key.branch, key.sha))
        return self._map.blocked(rows[0]) if rows else None

    def blocked_record_by_id(self: _Host, blocked_id: int) -> BlockedRecord | None:
        rows = self._query(
            f"SELECT {named(BLOCKED)} FROM integration_blocked_outcomes WHERE id = ?",
            (blocked_id,),
        )
        return self._map.blocked(rows[0]) if rows else None

    def blocked_records(
        self: _Host,
        since: datetime | None = None,
        reason: Reason | None = None,
        *,
        slug: str | None = None,
        status: str | None = None,
    ) -> list[BlockedRecord]:
        sql = f"SELECT {named(BLOCKED)} FROM integration_blocked_outcomes"
        where: list[str] = []
        params: list[Any] = []
        if slug is not None:
            # Served by the blocked_slug index: show reads one work item's rows, not all.
            where.append("slug = ?")
            params.append(slug)
        if status in _STATUSES:
            # Inline, not bound: only a literal lets the planner use blocked_open,
            # the partial index of the open outcomes (a closed set of two words).
            where.append(f"status = '{status}'")
        elif status is not None:
            where.append("status = ?")
            params.append(status)
        if reason is not None:
            where.append("reason = ?")
            params.append(reason.value)
        if since is not None:
            where.append("last_blocked_at >= ?")
            params.append(self._time(since))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY last_blocked_at DESC, id DESC"
        return [self._map.blocked(r) for r in self._query(sql, tuple(params))]

    def occurrences(self: _Host, blocked_id: int) -> list[Occurrence]:
        rows = self._query(
            "SELECT blocked_id, number, seq, at, report FROM blocked_evidence "
            "WHERE blocked_id = ? ORDER BY number",
            (blocked_id,),
        )
        return [self._map.occurrence(r) for r in rows]

    def follow_up_jobs(self: _Host, *, include_done: bool = False) -> list[FollowUpJob]:
        sql = "SELECT id, follow_up_slug, blocked_id, attempts, done_at FROM follow_up_outbox"
        if not include_done:
            sql += " WHERE done_at IS NULL"
        rows = self._query(sql + " ORDER BY id")
        return [
            FollowUpJob(
                r["id"],
                r["follow_up_slug"],
                r["blocked_id"],
                r["attempts"],
                r["done_at"] is not None,
            )
            for r in rows
        ]
