"""Records as JSON-ready data: the one place that fixes the ``--json`` schema (docs/cli.md).

Every function returns plain dicts, lists, strings, numbers, booleans and
``None``; times are UTC ISO 8601 with microseconds and a ``Z``. Keys are
sorted when the document is written, so the order is deterministic.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Types only: the read fast path (fastread.py) builds its JSON with these
    # functions and must not import the engine, attrs or the store to do so.
    from mergegate.statemachine import (
        BlockedRecord,
        Candidate,
        Guidance,
        Occurrence,
        Outcome,
        Transition,
    )

    from .listing import Integrator, QueueRow

__all__ = [
    "SCHEMA_VERSION",
    "blocked_json",
    "candidate_json",
    "guidance_json",
    "integrator_json",
    "occurrence_json",
    "outcome_json",
    "row_json",
    "stamp",
    "transition_json",
]

SCHEMA_VERSION = 1

Json = dict[str, Any]


def stamp(value: datetime | None) -> str | None:
    """``value`` as sortable UTC text, e.g. ``2026-01-01T12:00:00.000000Z``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def candidate_json(c: Candidate) -> Json:
    return {
        "id": c.id,
        "slug": c.key.slug,
        "branch": c.key.branch,
        "sha": c.key.sha,
        "state": c.state.value,
        "seq": c.seq,
        "submitted_at": stamp(c.submitted_at),
        "updated_at": stamp(c.updated_at),
    }


def transition_json(t: Transition) -> Json:
    return {
        "candidate_id": t.candidate_id,
        "seq": t.seq,
        "event": t.event.value,
        "source": None if t.source is None else t.source.value,
        "dest": t.dest.value,
        "sha": t.sha,
        "actor": t.actor,
        "at": stamp(t.at),
        "reason": t.reason,
        "idempotency_key": t.idempotency_key,
        # The facts the note repeats for people, in their own fields (schema 13).
        "lease_owner": t.lease_owner,
        "main_sha": t.main_sha,
        "interrupted": t.interrupted,
    }


def blocked_json(b: BlockedRecord) -> Json:
    return {
        "id": b.id,
        "slug": b.key.slug,
        "branch": b.key.branch,
        "sha": b.key.sha,
        "reason": b.reason.value,
        "main_sha": b.main_sha,
        "follow_up_slug": b.follow_up_slug,
        "previous_follow_up": b.previous_follow_up,
        "status": b.status,
        "follow_up_state": b.follow_up_state.value,
        "follow_up_error": b.follow_up_error,
        "blocked_at": stamp(b.blocked_at),
        "last_blocked_at": stamp(b.last_blocked_at),
        "occurrences": b.occurrences,
    }


def guidance_json(g: Guidance) -> Json:
    return {
        "code": g.code,
        "facts": list(g.facts),
        "next_commands": list(g.next_commands),
        "resume_command": g.resume_command,
        "text": g.text,
    }


def occurrence_json(o: Occurrence) -> Json:
    from mergegate.persistence import dump_report  # noqa: PLC0415  (the codec: only evidence)

    return {"number": o.number, "seq": o.seq, "at": stamp(o.at), "report": dump_report(o.report)}


def outcome_json(o: Outcome) -> Json:
    """An Engine outcome; ``changed`` is false for a no-op (a repeated submit)."""
    return {
        "candidate": candidate_json(o.candidate),
        "transition": None if o.transition is None else transition_json(o.transition),
        "changed": o.transition is not None,
        "blocked": None if o.blocked is None else blocked_json(o.blocked),
        "guidance": None if o.guidance is None else guidance_json(o.guidance),
    }


def _seconds(span: timedelta | None) -> int | None:
    return None if span is None else int(span.total_seconds())


def row_json(row: QueueRow, now: datetime) -> Json:
    """A row as the ``--json`` of ``list`` and ``/api/queue`` write it."""
    return dict(
        candidate_json(row.candidate),
        position=row.position,
        slot=row.slot,
        elapsed_seconds=_seconds(row.elapsed),
        waiting_for=row.waiting_for,
        eta=stamp(row.eta),
        eta_seconds=None if row.eta is None else _seconds(max(row.eta - now, timedelta(0))),
    )


def integrator_json(i: Integrator) -> Json:
    return {
        "state": i.state,
        "since": stamp(i.since),
        "owner": i.owner,
        "expires_at": stamp(i.expires_at),
    }
