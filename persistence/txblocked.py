"""The blocked outcomes' part of a SQL transaction: recording a block and closing it.

A block writes, in one transaction, its outcome row (one per identity, counted
on a replay), the report as a new occurrence of evidence, and the outbox row
that materializes its follow-up. The rows read here are remembered for the
rest of the transaction (see :mod:`.txbase`) and kept current by its writes.
"""

from __future__ import annotations

from datetime import datetime

from mergegate.statemachine import BlockedRecord, BlockedReport, CandidateKey, FollowUpState

from .rows import BLOCKED, _key, named
from .txbase import TransactionBase

__all__ = ["BLOCKED_BY_KEY", "BlockedWrites"]

BLOCKED_BY_KEY = (
    f"SELECT {named(BLOCKED)} FROM integration_blocked_outcomes "
    "WHERE slug = ? AND branch = ? AND sha = ?"
)

_UPSERT_BLOCKED = (
    "INSERT INTO integration_blocked_outcomes AS o (slug, branch, sha, reason, main_sha, "
    "follow_up_slug, previous_follow_up, status, follow_up_state, blocked_at, last_blocked_at, "
    "occurrences) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 'pending', ?, ?, 1) "
    "ON CONFLICT (slug, branch, sha) DO UPDATE SET reason = excluded.reason, "
    "main_sha = excluded.main_sha, last_blocked_at = excluded.last_blocked_at, "
    "occurrences = o.occurrences + 1, status = 'open', resumed_at = NULL, resolved_at = NULL "
    f"RETURNING {named(BLOCKED)}"
)


class BlockedWrites(TransactionBase):
    """The blocked outcomes' methods of the :class:`~mergegate.statemachine.Transaction`."""

    def blocked_record(self, key: CandidateKey) -> BlockedRecord | None:
        if key not in self._blocked:
            row = self._one(BLOCKED_BY_KEY, (key.slug, key.branch, key.sha))
            self._blocked[key] = None if row is None else self._map.blocked(row)
        return self._blocked[key]

    def follow_up_owner(self, follow_up_slug: str) -> CandidateKey | None:
        if follow_up_slug not in self._owners:
            row = self._one(
                "SELECT slug, branch, sha FROM integration_blocked_outcomes "
                "WHERE follow_up_slug = ?",
                (follow_up_slug,),
            )
            self._owners[follow_up_slug] = None if row is None else _key(row[0], row[1], row[2])
        return self._owners[follow_up_slug]

    def latest_follow_up(self, slug: str) -> str | None:
        if slug not in self._latest:
            row = self._one(
                "SELECT follow_up_slug FROM integration_blocked_outcomes WHERE slug = ? "
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
        stamp = self._d.time_in(at)
        row = self._one(
            _UPSERT_BLOCKED,
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
        record = self._map.blocked(row)
        self.execute(
            "INSERT INTO blocked_evidence (blocked_id, number, seq, at, report) "
            "VALUES (?, ?, ?, ?, ?)",
            (record.id, record.occurrences, seq, stamp, self._d.report_in(report)),
        )
        self.execute(
            "INSERT INTO follow_up_outbox (follow_up_slug, blocked_id, created_at) "
            # A new block of the same identity queues its follow-up again, so a
            # folder or roadmap entry removed as "done" comes back: the gate resets.
            "VALUES (?, ?, ?) ON CONFLICT (follow_up_slug) DO UPDATE SET done_at = NULL",
            (record.follow_up_slug, record.id, stamp),
        )
        self._blocked[key] = record
        self._owners[record.follow_up_slug] = key
        if record.occurrences == 1:
            self._latest[key.slug] = record.follow_up_slug
        return record

    def mark_resolved(self, key: CandidateKey, at: datetime) -> None:
        """Record when the resolver found ``key``'s follow-up resolved (at its resume)."""
        self._blocked.pop(key, None)
        self.execute(
            "UPDATE integration_blocked_outcomes SET resolved_at = ? "
            "WHERE slug = ? AND branch = ? AND sha = ?",
            (self._d.time_in(at), key.slug, key.branch, key.sha),
        )

    def close_blocked(self, key: CandidateKey, at: datetime) -> None:
        self._blocked.pop(key, None)  # read it again if asked: status and resumed_at change
        self.execute(
            "UPDATE integration_blocked_outcomes SET status = 'resumed', resumed_at = ? "
            "WHERE slug = ? AND branch = ? AND sha = ?",
            (self._d.time_in(at), key.slug, key.branch, key.sha),
        )

    # A store-level write, in a transaction of its own (SQLStore.finish_follow_up).
    def finish_follow_up(
        self, follow_up_slug: str, state: FollowUpState, error: str | None, at: datetime
    ) -> None:
        """Record the result of materializing a follow-up; ``CREATED`` marks its outbox row done."""
        # The outcome row first, then the outbox row: the order record_block
        # writes them in. The other order deadlocks against a concurrent replay.
        self.execute(
            "UPDATE integration_blocked_outcomes SET follow_up_state = ?, "
            "follow_up_error = ? WHERE follow_up_slug = ?",
            (state.value, self._d.text_in(error), follow_up_slug),
        )
        self.execute(
            "UPDATE follow_up_outbox SET attempts = attempts + 1, last_error = ?, "
            "done_at = CASE WHEN ? THEN COALESCE(done_at, ?) ELSE NULL END "
            "WHERE follow_up_slug = ?",
            (
                self._d.text_in(error),
                state is FollowUpState.CREATED,
                self._d.time_in(at),
                follow_up_slug,
            ),
        )
