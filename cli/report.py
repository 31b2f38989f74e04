"""``mergegate report --since 12h``: the overnight digest of the queue.

What happened in the window (integrated, blocked by reason, withdrawn,
requeued, superseded, flaky), how long candidates waited (time in queue,
p50 and p95, from submission to integration), and who is waiting on whom now.
Every read is bounded by the window or by the active queue
(docs/performance.md, "Reading the queue"), so a store with a long past
answers as fast as a young one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import click

from mergegate.statemachine import BlockedRecord, Candidate, Event, Reason, Store, Transition

from .app import cli, session_of
from .listing import QueueRow, short_span
from .output import emit
from .payload import stamp
from .since import parse_since
from .status import Status, integrator_json, read_status

__all__ = ["Digest", "digest", "digest_json", "digest_text", "percentile", "report"]

#: The window of ``report`` when --since is not given: one night and a morning.
DEFAULT_SINCE = "12h"


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100); ``None`` for no values.

    Nearest rank, not interpolation: the answer is a time some candidate
    really waited, which is what an operator quotes.
    """
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


@attrs.frozen
class Moved:
    """One logged move of the window with its candidate's slug."""

    slug: str
    entry: Transition


@attrs.frozen
class Digest:
    """What ``report`` says about the window ``[since, now]``."""

    since: datetime
    now: datetime
    integrated: tuple[tuple[Candidate, Transition], ...]
    blocked: tuple[BlockedRecord, ...]
    withdrawn: tuple[Moved, ...]
    requeued: tuple[Moved, ...]
    superseded: tuple[Moved, ...]
    flaky: tuple[Candidate, ...]
    status: Status

    def waits(self) -> list[float]:
        """Seconds from submission to integration of each candidate integrated in the window."""
        return [(t.at - c.submitted_at).total_seconds() for c, t in self.integrated]

    def blocked_by_reason(self) -> dict[str, int]:
        counts = Counter(b.reason.value for b in self.blocked)
        return {r.value: counts[r.value] for r in Reason if counts[r.value]}


def digest(store: Store, since: datetime, now: datetime) -> Digest:
    """Read the window's moves, blocked outcomes and the queue now."""
    entries = store.log_since(since)
    candidates = {c.id: c for c in store.candidates_by_ids([t.candidate_id for t in entries])}

    def moved(event: Event) -> tuple[Moved, ...]:
        return tuple(
            Moved(candidates[t.candidate_id].key.slug, t)
            for t in entries
            if t.event is event and t.candidate_id in candidates
        )

    integrated = tuple(
        (candidates[t.candidate_id], t)
        for t in entries
        if t.event is Event.INTEGRATE and t.candidate_id in candidates
    )
    blocked = tuple(store.blocked_records(since))
    # Flaky: the very commit whose checks failed in the window integrated in it too.
    failed_checks = {b.key for b in blocked if b.reason is Reason.CHECKS_FAILED}
    flaky = tuple(c for c, _ in integrated if c.key in failed_checks)
    return Digest(
        since,
        now,
        integrated,
        blocked,
        moved(Event.WITHDRAW),
        moved(Event.REQUEUE),
        moved(Event.SUPERSEDE),
        flaky,
        read_status(store, now),
    )


def _seconds(value: float | None) -> int | None:
    return None if value is None else round(value)


def _moved_json(m: Moved) -> dict[str, Any]:
    return {"slug": m.slug, "at": stamp(m.entry.at), "actor": m.entry.actor, "note": m.entry.reason}


def _waiting(rows: Sequence[QueueRow]) -> list[QueueRow]:
    return [r for r in rows if r.waiting_for is not None]


def digest_json(d: Digest) -> dict[str, Any]:
    """The ``--json`` result of ``report`` (docs/cli.md, "report")."""
    waits = d.waits()
    hours = max((d.now - d.since).total_seconds() / 3600, 1e-9)
    return {
        "since": stamp(d.since),
        "now": stamp(d.now),
        "integrated": [
            {
                "slug": c.key.slug,
                "sha": c.key.sha,
                "at": stamp(t.at),
                "time_in_queue_seconds": round((t.at - c.submitted_at).total_seconds()),
            }
            for c, t in d.integrated
        ],
        "integrated_per_hour": round(len(d.integrated) / hours, 2),
        "time_in_queue_seconds": {
            "p50": _seconds(percentile(waits, 50)),
            "p95": _seconds(percentile(waits, 95)),
            "count": len(waits),
        },
        "blocked_by_reason": d.blocked_by_reason(),
        "blocked": [
            {
                "slug": b.key.slug,
                "sha": b.key.sha,
                "reason": b.reason.value,
                "follow_up_slug": b.follow_up_slug,
                "status": b.status,
                "last_blocked_at": stamp(b.last_blocked_at),
            }
            for b in d.blocked
        ],
        "withdrawn": [_moved_json(m) for m in d.withdrawn],
        "requeued": [_moved_json(m) for m in d.requeued],
        "superseded": [_moved_json(m) for m in d.superseded],
        "flaky": [{"slug": c.key.slug, "sha": c.key.sha} for c in d.flaky],
        "waiting": [
            {"slug": r.candidate.key.slug, "state": r.candidate.state.value, "on": r.waiting_for}
            for r in _waiting(d.status.rows)
        ],
        "integrator": integrator_json(d.status.integrator),
    }


def _span(seconds: float | None) -> str:
    # Rounded as --json and the status page round it (_seconds): one wait, one figure.
    return "-" if seconds is None else short_span(timedelta(seconds=round(seconds)))


#: The most slugs a headline names; the rest are counted ("... and 7 more").
NAMED = 10


def _names(slugs: Sequence[str], *, newest: bool = False) -> str:
    """Each slug once, with its count when repeated (``churn x22``), at most :data:`NAMED`
    of them (the first, or the ``newest``), then how many moves were left unnamed.

    ASCII only: a report may go to a terminal or a mail in any encoding.
    """
    counts: dict[str, int] = {}
    for slug in slugs:
        counts[slug] = counts.get(slug, 0) + 1
    items = list(counts.items())
    shown = items[-NAMED:] if newest else items[:NAMED]
    left = len(slugs) - sum(n for _, n in shown)
    named = ", ".join(slug if n == 1 else f"{slug} x{n}" for slug, n in shown)
    return named + (f", ... and {left} more" if left else "")


def digest_text(d: Digest) -> str:
    """The human digest: a headline per kind of event, the slugs, then who waits on whom."""
    window = short_span(d.now - d.since)
    waits = d.waits()
    lines = [
        f"report for the last {window} (since {stamp(d.since)})",
        f"integrated:  {len(d.integrated)}"
        + (
            f" ({_names([c.key.slug for c, _ in d.integrated], newest=True)})"
            if d.integrated
            else ""
        ),
        f"time in queue: p50 {_span(percentile(waits, 50))}, p95 {_span(percentile(waits, 95))}"
        f" (submission to integration, {len(waits)} candidate(s))",
    ]
    by_reason = d.blocked_by_reason()
    reasons = ", ".join(f"{r} {n}" for r, n in by_reason.items())
    lines.append(f"blocked:     {len(d.blocked)}" + (f" ({reasons})" if reasons else ""))
    lines.extend(
        f"  {b.key.slug}: {b.reason.value}, follow-up {b.follow_up_slug} ({b.status})"
        for b in d.blocked[:20]
    )
    for label, moves in (
        ("withdrawn", d.withdrawn),
        ("requeued", d.requeued),
        ("superseded", d.superseded),
    ):
        named = f" ({_names([m.slug for m in moves])})" if moves else ""
        lines.append(f"{label + ':':<12} {len(moves)}{named}")
    if d.flaky:
        lines.append(f"flaky:       {len(d.flaky)} ({_names([c.key.slug for c in d.flaky])})")
    i = d.status.integrator
    since = "-" if i.since is None else (stamp(i.since) or "-")
    lines.append(f"integrator:  {i.state} since {since}" + (f" ({i.owner})" if i.owner else ""))
    waiting = _waiting(d.status.rows)
    lines.append(f"waiting now: {len(waiting)}")
    lines.extend(
        f"  {r.candidate.key.slug} ({r.candidate.state.value}) waits for {r.waiting_for}"
        for r in waiting
    )
    return "\n".join(lines) + "\n"


@cli.command()
@click.option(
    "--since",
    default=DEFAULT_SINCE,
    show_default=True,
    metavar="DURATION|TIME",
    help="The window: a duration back from now (30m, 12h, 7d) or an ISO 8601 time (UTC).",
)
@click.pass_context
def report(ctx: click.Context, since: str) -> int:
    """The digest of a window: integrated, blocked by reason, withdrawn, requeued, flaky,
    time in queue (p50, p95), and who is waiting on whom now."""
    s = session_of(ctx)
    now = datetime.now(UTC)
    when = parse_since(since, now)
    s.reader()  # the same checks every command makes
    d = digest(s.store(), when, now)
    return emit(s.json, s.command, digest_json(d), digest_text(d))
