"""Rows to records, by column name, for every SQL store.

The column lists below are the single statement of what a query selects; the
mapping reads each value by its name, so adding a column or reordering a
SELECT cannot shift a value into the wrong field. Times, JSON and free text
pass through the dialect, which knows what its driver returns.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, ClassVar

from mergegate.statemachine import (
    BlockedRecord,
    Candidate,
    CandidateKey,
    Event,
    FollowUpState,
    Lease,
    Occurrence,
    Reason,
    State,
    Transition,
)

from .codec import load_report, load_time
from .dialect import Dialect

__all__ = [
    "BLOCKED",
    "CANDIDATE",
    "LEASE",
    "TRANSITION",
    "Mapper",
    "named",
    "row_class",
]

CANDIDATE = ("id", "slug", "branch", "sha", "state", "seq", "submitted_at", "updated_at")
TRANSITION = (
    "candidate_id",
    "seq",
    "event",
    "source",
    "dest",
    "sha",
    "actor",
    "at",
    "reason",
    "idempotency_key",
    "request_digest",
    "lease_owner",
    "main_sha",
    "interrupted",
)
BLOCKED = (
    "id",
    "slug",
    "branch",
    "sha",
    "reason",
    "main_sha",
    "follow_up_slug",
    "previous_follow_up",
    "status",
    "follow_up_state",
    "follow_up_error",
    "blocked_at",
    "last_blocked_at",
    "occurrences",
    "resolved_at",
)
LEASE = ("name", "owner", "candidate_id", "acquired_at", "expires_at")


def named(columns: tuple[str, ...], table: str = "", prefix: str = "") -> str:
    """A select list: ``t.col AS prefixcol, ...`` (only what is given of table and prefix)."""
    qualify = f"{table}." if table else ""
    return ", ".join(f"{qualify}{c} AS {prefix}{c}" if prefix else f"{qualify}{c}" for c in columns)


class _Row(tuple[Any, ...]):
    """A result row that is also indexed by column name (``row["slug"]``)."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if type(key) is str:
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)


@functools.lru_cache(maxsize=256)
def row_class(names: tuple[str, ...]) -> type[_Row]:
    """The row type of one result shape, made once per shape."""
    return type("Row", (_Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


@functools.lru_cache(maxsize=4096)
def _key(slug: str, branch: str, sha: str) -> CandidateKey:
    # The Engine reads a candidate back on every move it makes; keys are
    # immutable, so each identity is validated once per process, not per read.
    return CandidateKey(slug, branch, sha)


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else load_time(value)


class Mapper:
    """Builds records from rows of one dialect."""

    __slots__ = ("_dialect",)

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect

    @staticmethod
    def candidate(row: Any) -> Candidate:
        return Candidate(
            row["id"],
            _key(row["slug"], row["branch"], row["sha"]),
            State(row["state"]),
            row["seq"],
            _time(row["submitted_at"]),
            _time(row["updated_at"]),
        )

    def transition(self, row: Any) -> Transition:
        text = self._dialect.text_out
        return Transition(
            candidate_id=row["candidate_id"],
            seq=row["seq"],
            event=Event(row["event"]),
            source=State(row["source"]) if row["source"] else None,
            dest=State(row["dest"]),
            sha=row["sha"],
            actor=text(row["actor"]),
            at=_time(row["at"]),
            reason=text(row["reason"]),
            idempotency_key=text(row["idempotency_key"]),
            request_digest=row["request_digest"],
            lease_owner=text(row["lease_owner"]),
            main_sha=row["main_sha"],
            interrupted=text(row["interrupted"]),
        )

    def blocked(self, row: Any, prefix: str = "") -> BlockedRecord:
        def get(name: str) -> Any:
            return row[prefix + name]

        return BlockedRecord(
            id=get("id"),
            key=_key(get("slug"), get("branch"), get("sha")),
            reason=Reason(get("reason")),
            main_sha=get("main_sha"),
            follow_up_slug=get("follow_up_slug"),
            previous_follow_up=get("previous_follow_up"),
            status=get("status"),
            follow_up_state=FollowUpState(get("follow_up_state")),
            follow_up_error=self._dialect.text_out(get("follow_up_error")),
            blocked_at=_time(get("blocked_at")),
            last_blocked_at=_time(get("last_blocked_at")),
            occurrences=get("occurrences"),
            resolved_at=None if get("resolved_at") is None else _time(get("resolved_at")),
        )

    def lease(self, row: Any) -> Lease:
        return Lease(
            row["name"],
            self._dialect.text_out(row["owner"]),
            row["candidate_id"],
            _time(row["acquired_at"]),
            _time(row["expires_at"]),
        )

    def occurrence(self, row: Any) -> Occurrence:
        report = load_report(self._dialect.report_out(row["report"]))
        return Occurrence(row["blocked_id"], row["number"], row["seq"], report, _time(row["at"]))
