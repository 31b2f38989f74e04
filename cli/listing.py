"""The order ``list`` shows candidates in: the queue as ``apply`` will take it.

A pure function of the candidates and the table's state sets, so that one store
always lists in one order: the candidate holding the lease first, then the
queued ones in the order ``claim_next`` takes them (the store's queue
position), numbered from 1, then the other active ones (held out of the queue
by a block), then the finished ones, each group oldest submission first.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from mergegate.statemachine import (
    TABLE,
    Candidate,
    State,
    Table,
)
from mergegate.statemachine._validation import short_sha
from mergegate.statemachine.queueview import rank

from .columns import short_span

__all__ = ["Listed", "QueueRow", "queue_listing", "queue_rows", "short_span", "typical_apply"]

#: One row of the listing: the candidate and its queue position (``None`` off the queue).
Listed = tuple[Candidate, int | None]


def queue_listing(
    candidates: Iterable[Candidate],
    *,
    states: Sequence[State] | None = None,
    table: Table = TABLE,
    queue: Sequence[Candidate] | None = None,
) -> list[Listed]:
    """The candidates in queue order with their positions, kept to ``states`` if given.

    ``queue`` is the store's queue (``Store.queue()``), whose stored order the
    queued candidates take (without it, submission order). The order is the
    API's own (``mergegate.statemachine.queueview.rank``), so ``list``, the
    status page and an embedder's ``queue()`` never disagree.
    """
    entries = rank(candidates, queue or (), states=states, table=table)
    return [(e.candidate, e.position) for e in entries]


@attrs.frozen
class Integrator:
    """Whether an integrator is at work: ``alive`` (its lease is being renewed), ``down``
    (its lease expired at ``since``: it stopped renewing) or ``idle`` (no lease is held;
    ``since`` is the last move of any candidate)."""

    state: str
    since: datetime | None
    owner: str | None = None
    expires_at: datetime | None = None


@attrs.frozen
class QueueRow:
    """One row of ``list`` and the status page: where a candidate is, how long, behind whom.

    ``slot`` is a link's place in the chain in flight (1 is the head, the link
    built on ``main``); ``elapsed`` is the time in its current state; ``eta``
    the estimated end of its apply, ``None`` when nothing recent tells.
    """

    candidate: Candidate
    position: int | None
    slot: int | None
    elapsed: timedelta | None
    waiting_for: str | None
    eta: datetime | None


def typical_apply(seconds: Sequence[float]) -> timedelta | None:
    """The median of recent apply durations: robust to one stuck or one instant apply."""
    if not seconds:
        return None
    return timedelta(seconds=statistics.median(seconds))


def queue_rows(
    listed: Sequence[Listed],
    *,
    now: datetime,
    typical: timedelta | None,
    follow_ups: Mapping[int, str] | None = None,
    approvals: Mapping[int, bool] | None = None,
    table: Table = TABLE,
    paused_by: str | None = None,
) -> list[QueueRow]:
    """``listed`` (from :func:`queue_listing`) with slot, elapsed, waiting-for and ETA.

    Estimates assume one apply at a time after the chain in flight: a queued
    candidate at position p ends about ``p`` typical applies after the last
    link in flight does. ``follow_ups`` maps a blocked candidate's id to its
    follow-up slug, which is what it waits for. ``approvals`` maps a candidate
    held for an operator's approval (``config_changed``) to whether its sha is
    approved: that, not the follow-up, is what it waits for. ``paused_by``
    names who paused the queue: the head waits for the unpause, not for an
    integrator, and no queued candidate has an ETA (what is in flight keeps its own).
    """
    follow_ups = follow_ups or {}
    approvals = approvals or {}
    flying = sorted(
        (c for c, _ in listed if c.state in table.leased), key=lambda c: (c.updated_at, c.id)
    )
    slots = {c.id: n for n, c in enumerate(flying, start=1)}
    chain_end = now
    if typical is not None and flying:
        chain_end = max(now, *(c.updated_at + typical for c in flying))
    by_position = {pos: c for c, pos in listed if pos is not None}
    rows = []
    for c, pos in listed:
        slot = slots.get(c.id)
        active = c.state in table.active
        eta: datetime | None = None
        if typical is not None and slot is not None:
            eta = max(now, c.updated_at + typical)
        elif typical is not None and pos is not None and paused_by is None:
            # Paused, a queued candidate waits for a person, not for the chain: no estimate.
            eta = chain_end + typical * pos
        rows.append(
            QueueRow(
                c,
                pos,
                slot,
                max(now - c.updated_at, timedelta(0)) if active else None,
                _waiting_for(c, pos, slot, flying, by_position, follow_ups, approvals, table)
                if pos != 1 or paused_by is None
                else f"the unpause: paused by {paused_by}",
                eta,
            )
        )
    return rows


def _waiting_for(
    c: Candidate,
    pos: int | None,
    slot: int | None,
    flying: Sequence[Candidate],
    by_position: Mapping[int, Candidate],
    follow_ups: Mapping[int, str],
    approvals: Mapping[int, bool],
    table: Table,
) -> str | None:
    if slot is not None:
        # A link settles only after the links before it did.
        return None if slot == 1 else f"slot {slot - 1}: {flying[slot - 2].key.slug}"
    if pos is not None:
        if pos > 1:
            return f"position {pos - 1}: {by_position[pos - 1].key.slug}"
        if flying:
            return f"slot {len(flying)}: {flying[-1].key.slug}"
        return "an integrator: `mergegate run` takes the queue"
    if c.state in table.carrying_blocked:
        approved = approvals.get(c.id)
        if approved is not None:
            # A config_changed block: an approval of the sha settles it, not the follow-up.
            sha = short_sha(c.key.sha)
            return (
                f"its resume: {sha} is approved" if approved else f"an operator's approval: {sha}"
            )
        follow_up = follow_ups.get(c.id)
        step = "remediation" if c.state is State.REMEDIATING else "its follow-up"
        return step if follow_up is None else f"{step}: {follow_up}"
    return None
