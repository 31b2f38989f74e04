"""What a ``[[notify]]`` command reads on stdin: one JSON document per event.

A candidate's event is the outcome as ``--json`` prints it in ``result``, so a
script written for that schema keeps working, plus what a person paged by it
needs to act without logging in to the integration host: the guidance (the
``NEXT:`` lines as the CLI prints them), the named failure (conflicted paths,
the failing check and its output tail, as ``show`` and the status page name
it) and where the evidence is. The integrator's events (``integrator_down``,
``integrator_back``) say whose lease was given up, since when, what became of
its work and who noticed. Every document has ``notify`` (the event), ``at`` and
a ``message``: plain text for a chat line or a page, first line a headline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from .human import evidence_lines
from .payload import guidance_json, occurrence_json, outcome_json, stamp

if TYPE_CHECKING:
    from mergegate.followups import FollowUpGuide
    from mergegate.statemachine import (
        BlockedRecord,
        CheckResult,
        Guidance,
        Lease,
        Occurrence,
        Outcome,
        Store,
    )

__all__ = [
    "NoticeSources",
    "Settled",
    "candidate_notice",
    "integrator_back_notice",
    "integrator_down_notice",
    "last_renewed",
]

Json = dict[str, Any]


@attrs.frozen
class NoticeSources:
    """Where a notice reads what the outcome does not carry: the store and the guide.

    The Engine renders guidance only after its hooks have run, and a notification
    is one of them, so the notice renders it itself, with the very guide the
    Engine uses (the same templates, the same text).
    """

    store: Store
    guide: FollowUpGuide
    #: The todos folder on the integration host (absolute), for the evidence's path.
    todos: Path


@attrs.frozen
class Settled:
    """A dead or stalled integrator's lease, and the moves that settled its work here."""

    lease: Lease
    outcomes: tuple[Outcome, ...]
    #: ``expired`` (it stopped renewing) or ``process_gone`` (its process on this host died).
    why: str


def _ident(outcome: Outcome) -> str:
    key = outcome.candidate.key
    return f"{key.slug} ({key.branch}@{key.sha[:12]})"


def _failed_check(check: CheckResult) -> Json:
    return {
        "name": check.name,
        "exit_code": check.exit_code,
        "timed_out": check.timed_out,
        "output_tail": check.output_tail,
        "url": check.url,
        "step": check.step,
    }


def _failure(occurrence: Occurrence) -> Json:
    """The named failure: what ``show`` prints for the latest occurrence, and its facts."""
    report, evidence = occurrence.report, occurrence.report.evidence
    failed = next((c for c in evidence.checks if c.failed), None)
    return {
        "reason": report.reason.value,
        "main_sha": report.main_sha,
        "detail": report.detail,
        "conflicted_paths": list(evidence.conflicted_paths),
        "failed_check": None if failed is None else _failed_check(failed),
        "diagnostic": evidence.diagnostic,
        "lines": [line.strip() for line in evidence_lines(occurrence)],
    }


def _evidence(sources: NoticeSources, record: BlockedRecord, latest: Occurrence | None) -> Json:
    """Where the evidence is: the todo folder and its file on the integration host, the
    command that prints it from the store, and the stored occurrence itself."""
    from mergegate.statemachine import Show  # noqa: PLC0415

    guide, fu = sources.guide, record.follow_up_slug
    folder = f"{guide.todos_label}/{fu}"
    name = guide.evidence_file
    return {
        "follow_up": fu,
        "follow_up_state": record.follow_up_state.value,
        "folder": folder,
        "file": None if name is None else f"{folder}/{name}",
        "path": None if name is None else str(sources.todos / fu / name),
        "show": guide.templates.render(Show(record.key.slug), record.key, fu),
        "occurrence": None if latest is None else occurrence_json(latest),
    }


def _blocked_message(outcome: Outcome, failure: Json | None, guidance: Guidance | None) -> str:
    assert outcome.blocked is not None
    b = outcome.blocked
    lines = [f"{_ident(outcome)} blocked: {b.reason.value} against main {b.main_sha[:12]}"]
    if failure is not None:
        # Its first line is the reason, which the headline gives already.
        lines.extend(f"  {line}" for line in failure["lines"][1:])
    text = "\n".join(lines) + "\n"
    return text if guidance is None else text + guidance.text


def _message(event: str, outcome: Outcome, extra: Json) -> str:
    t = outcome.transition
    why = "" if t is None or t.reason is None else f": {t.reason}"
    by = "" if t is None else f" by {t.actor}"
    match event:
        case "integrated":
            main = "" if t is None or t.main_sha is None else f": main is {t.main_sha[:12]}"
            return f"{_ident(outcome)} integrated{main}\n"
        case "withdrawn":
            return f"{_ident(outcome)} withdrawn{by}{why}\n"
        case "requeued":
            cause = "" if t is None or t.interrupted is None else f": {t.interrupted}"
            return f"{_ident(outcome)} requeued{why or cause}\n"
        case "superseded":
            old = extra.get("superseded_sha")
            was = "" if old is None else f" (was {old[:12]})"
            now = outcome.candidate.key.sha[:12]
            return f"{_ident(outcome)} superseded{by}: now at {now}{was}\n"
    return f"{_ident(outcome)} {event}\n"


def _previous_sha(store: Store, outcome: Outcome) -> str | None:
    """The sha a supersede replaced: the one logged by the move before it."""
    history = store.history(outcome.candidate.id)
    seq = outcome.candidate.seq if outcome.transition is None else outcome.transition.seq
    earlier = [t for t in history if t.seq < seq]
    return earlier[-1].sha if earlier else None


def candidate_notice(
    event: str, outcome: Outcome, sources: NoticeSources | None, now: datetime
) -> Json:
    """The document for ``event`` (a name of ``NOTIFY_ON``) of one committed move.

    Without ``sources`` (an Engine built without the CLI's wiring) the guidance,
    failure and evidence stay ``null``: the outcome alone does not carry them.
    """
    doc = dict(outcome_json(outcome), notify=event, at=stamp(now), failure=None, evidence=None)
    if event == "superseded" and sources is not None:
        doc["superseded_sha"] = _previous_sha(sources.store, outcome)
    if event != "blocked" or outcome.blocked is None:
        doc["message"] = _message(event, outcome, doc)
        return doc
    guidance = outcome.guidance
    failure = None
    if sources is not None:
        record = outcome.blocked
        if guidance is None:
            guidance = sources.guide.render(outcome.candidate, record)
        found = sources.store.occurrences(record.id)
        latest = found[-1] if found else None
        failure = None if latest is None else _failure(latest)
        doc["failure"] = failure
        doc["evidence"] = _evidence(sources, record, latest)
    doc["guidance"] = None if guidance is None else guidance_json(guidance)
    doc["message"] = _blocked_message(outcome, failure, guidance)
    return doc


def last_renewed(lease: Lease, ttl: timedelta) -> datetime:
    """When ``lease``'s holder last renewed it: its expiry less the TTL, never before it took it.

    A heartbeat sets the expiry to its time plus the TTL, so this is the last
    moment the holder is known to have been alive.
    """
    return max(lease.expires_at - ttl, lease.acquired_at)


def _owners_work(outcomes: Sequence[Outcome]) -> str:
    if not outcomes:
        return "it held no candidate"
    return ", ".join(f"{o.candidate.key.slug} {o.candidate.state.value}" for o in outcomes)


def integrator_down_notice(
    settled: Settled, *, now: datetime, ttl: timedelta, noticed_by: str
) -> Json:
    """``integrator_down``: an integrator stopped renewing its lease (or its process died)
    and ``noticed_by`` settled its work: who, since when, and what became of each candidate."""
    lease = settled.lease
    seen = last_renewed(lease, ttl)
    down = max(now - seen, timedelta(0))
    said = "its lease expired" if settled.why == "expired" else "its process is gone"
    message = (
        f"integrator {lease.owner} is down: {said}; last renewed its lease at "
        f"{stamp(seen)} ({int(down.total_seconds())} s ago). {noticed_by} settled its work: "
        f"{_owners_work(settled.outcomes)}.\n"
    )
    return {
        "notify": "integrator_down",
        "at": stamp(now),
        "integrator": {
            "owner": lease.owner,
            "lease_acquired_at": stamp(lease.acquired_at),
            "lease_expires_at": stamp(lease.expires_at),
            "last_renewed_at": stamp(seen),
            "why": settled.why,
        },
        "down_seconds": int(down.total_seconds()),
        "noticed_by": noticed_by,
        "settled": [outcome_json(o) for o in settled.outcomes],
        "message": message,
    }


def integrator_back_notice(
    settled: Sequence[Settled], *, now: datetime, ttl: timedelta, owner: str
) -> Json:
    """``integrator_back``: ``owner`` took over the queue from the integrators of ``settled``;
    the queue's work stood still since the earliest of their last renewals."""
    since = min(last_renewed(s.lease, ttl) for s in settled)
    down = max(now - since, timedelta(0))
    replaced = [s.lease.owner for s in settled]
    message = (
        f"integrator {owner} is at work again, after at most {int(down.total_seconds())} s "
        f"without one (since {stamp(since)}; it replaces {', '.join(replaced)}).\n"
    )
    return {
        "notify": "integrator_back",
        "at": stamp(now),
        "integrator": {"owner": owner},
        "replaces": replaced,
        "down_since": stamp(since),
        "down_seconds": int(down.total_seconds()),
        "message": message,
    }
