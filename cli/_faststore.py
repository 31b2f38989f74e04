"""The default SQLite store as the read fast path reads it: rows shaped as the store's records.

The fast path cannot import the lifecycle table or the store, so this module
holds copies of the table's state sets and of the schema version, and the
store's own queries (tests/cli/test_cli_fastread.py pins the copies to their
sources). A row the copies do not know raises :class:`StepAside`.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._fastgate import StepAside

__all__ = [
    "ACTIVE",
    "CANDIDATE",
    "CARRYING_BLOCKED",
    "EVENTS",
    "IN_FORCE",
    "LEASED",
    "QUEUED",
    "SCHEMA_VERSION",
    "SHA_SHOWN",
    "STATES",
    "TRANSITION",
    "Candidate",
    "Reader",
    "Transition",
    "load_time",
    "short_time",
]

#: The schema version these queries are written for (persistence/migrations.py).
#: Any other version steps aside: an older file is migrated by the store on open
#: (a write), a newer one refused.
SCHEMA_VERSION = 14

# Copies of the lifecycle table's state sets (statemachine/table.py), in the
# order of the State enum where order matters; the tests compare them.
STATES = ("pending", "applying", "blocked", "remediating", "retry", "integrated", "withdrawn")
EVENTS = frozenset(
    {
        "submit",
        "start_apply",
        "integrate",
        "block",
        "interrupt",
        "start_remediation",
        "resume",
        "supersede",
        "withdraw",
        "requeue",
    }
)
ACTIVE = ("pending", "applying", "blocked", "remediating", "retry")
QUEUED = frozenset({"pending", "retry"})
LEASED = frozenset({"applying"})
CARRYING_BLOCKED = frozenset({"blocked", "remediating"})

# The width of a sha in text (statemachine/_validation.py).
SHA_SHOWN = 12

CANDIDATE = "id, slug, branch, sha, state, seq, submitted_at, updated_at"
# A pause or a drain in force (persistence/controls.py): the newest row of each pair.
IN_FORCE = (
    "SELECT 1 FROM queue_controls WHERE id IN ("
    "(SELECT id FROM queue_controls WHERE action IN ('pause', 'unpause') "
    "ORDER BY id DESC LIMIT 1), "
    "(SELECT id FROM queue_controls WHERE action IN ('drain', 'undrain') "
    "ORDER BY id DESC LIMIT 1)) "
    "AND action IN ('pause', 'drain')"
)
TRANSITION = (
    "candidate_id, seq, event, source, dest, sha, actor, at, reason, idempotency_key, "
    "lease_owner, main_sha, interrupted"
)


class Reader:
    """The default SQLite store, opened for reading only, at the known schema version."""

    def __init__(self, path: Path) -> None:
        if path.is_dir() or not path.exists():
            raise StepAside
        # mode=rw: never create the file (the general path says "run init").
        self.conn = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=5.0)
        try:
            if self.one("PRAGMA journal_mode") != ("wal",):
                raise StepAside
            if self.one("SELECT MAX(version) FROM schema_migrations") != (SCHEMA_VERSION,):
                raise StepAside
        except BaseException:
            self.conn.close()
            raise
        # One snapshot for every read of this call.
        self.conn.execute("BEGIN")

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *_: object) -> None:
        self.conn.close()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        found: tuple[Any, ...] | None = self.conn.execute(sql, params).fetchone()
        return found


class _Word(str):
    """A state or event name that answers ``.value``, as the enums the JSON functions read."""

    __slots__ = ()

    @property
    def value(self) -> str:
        return str(self)


class _Key:
    __slots__ = ("branch", "sha", "slug")

    def __init__(self, slug: str, branch: str, sha: str) -> None:
        self.slug, self.branch, self.sha = slug, branch, sha


class Candidate:
    """The fields of ``Candidate`` that ``payload.candidate_json`` and the text read."""

    __slots__ = ("id", "key", "seq", "state", "submitted_at", "updated_at")

    def __init__(self, row: tuple[Any, ...]) -> None:
        cid, slug, branch, sha, state, seq, submitted, updated = row
        if state not in STATES:
            raise StepAside
        self.id, self.key, self.state, self.seq = cid, _Key(slug, branch, sha), _Word(state), seq
        self.submitted_at, self.updated_at = load_time(submitted), load_time(updated)


class Transition:
    """The fields of ``Transition`` that ``payload.transition_json`` and the text read."""

    __slots__ = (
        "actor",
        "at",
        "candidate_id",
        "dest",
        "event",
        "idempotency_key",
        "interrupted",
        "lease_owner",
        "main_sha",
        "reason",
        "seq",
        "sha",
        "source",
    )

    def __init__(self, row: tuple[Any, ...]) -> None:
        cid, seq, event, source, dest, sha, actor, at, reason, key, owner, main, cause = row
        if event not in EVENTS or dest not in STATES or (source and source not in STATES):
            raise StepAside
        self.candidate_id, self.seq, self.event = cid, seq, _Word(event)
        # The store's mapper reads an empty source as none (persistence/rows.py).
        self.source = _Word(source) if source else None
        self.dest, self.sha, self.actor, self.at = _Word(dest), sha, actor, load_time(at)
        self.reason, self.idempotency_key = reason, key
        self.lease_owner, self.main_sha, self.interrupted = owner, main, cause


def load_time(value: str) -> datetime:
    """A stored time as ``codec.load_time`` reads it."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def short_time(value: datetime | None) -> str:
    """A time as the text of ``show`` and ``list`` shows it, to the second."""
    from .payload import stamp  # noqa: PLC0415

    text = stamp(value)
    return "-" if text is None else text[:19].replace("T", " ")
