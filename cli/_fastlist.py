"""``list`` on the read fast path: the active queue, its slots, positions, waits and ETAs.

The rows, the integrator and the table are those ``status.read_status``,
``listing.queue_rows`` and ``human.queue_table`` make of a queue in which no
candidate carries a block and no control is in force; either raises
:class:`StepAside`, for click's path to render.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ._fastgate import StepAside
from ._faststore import (
    ACTIVE,
    CANDIDATE,
    CARRYING_BLOCKED,
    IN_FORCE,
    LEASED,
    QUEUED,
    SHA_SHOWN,
    Candidate,
    Reader,
    load_time,
    short_time,
)
from .columns import short_span, table

__all__ = ["list_queue"]

# What `list` takes the typical apply time from (cli/status.py, persistence/sqlstore.py).
_RECENT_APPLIES = 20
_RECENT_ENTRIES = 5000


class _Row:
    """The fields of ``listing.QueueRow`` that ``payload.row_json`` and the table read."""

    __slots__ = ("candidate", "elapsed", "eta", "position", "slot", "waiting_for")

    def __init__(
        self,
        candidate: Candidate,
        position: int | None,
        slot: int | None,
        elapsed: timedelta | None,
        waiting_for: str | None,
        eta: datetime | None,
    ) -> None:
        self.candidate, self.position, self.slot = candidate, position, slot
        self.elapsed, self.waiting_for, self.eta = elapsed, waiting_for, eta


class _Integrator:
    __slots__ = ("expires_at", "owner", "since", "state")

    def __init__(
        self,
        state: str,
        since: datetime | None,
        owner: str | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        self.state, self.since, self.owner, self.expires_at = state, since, owner, expires_at


def list_queue(db: Reader, now: datetime) -> tuple[dict[str, Any], str]:
    """``list``: the active queue (status.read_status), when no candidate carries a block."""
    from .payload import integrator_json, row_json, stamp  # noqa: PLC0415

    if db.rows(IN_FORCE):
        raise StepAside  # a pause or a drain to say (cli/controlview.py)
    active = [
        Candidate(r)
        for r in db.rows(f"SELECT {CANDIDATE} FROM candidates WHERE active ORDER BY id")
    ]
    if any(c.state in CARRYING_BLOCKED or c.state not in ACTIVE for c in active):
        raise StepAside  # follow-ups and approvals to wait for
    queue = [r[0] for r in db.rows("SELECT id FROM candidates WHERE queued ORDER BY queue_pos, id")]
    seconds = [
        (load_time(end) - load_time(start)).total_seconds()
        for end, start in db.rows(
            "SELECT t.at, p.at FROM transitions t JOIN transitions p "
            "ON p.candidate_id = t.candidate_id AND p.seq = t.seq - 1 "
            "WHERE t.id > (SELECT COALESCE(MAX(id), 0) FROM transitions) - ? "
            "AND t.event = ? AND p.event = ? ORDER BY t.id DESC LIMIT ?",
            (_RECENT_ENTRIES, "integrate", "start_apply", _RECENT_APPLIES),
        )
    ]
    typical = None if not seconds else timedelta(seconds=_median(seconds))
    rows = _rows(_rank(active, queue), now, typical)
    leases = db.rows("SELECT owner, acquired_at, expires_at FROM leases ORDER BY name")
    last = db.one("SELECT at FROM transitions ORDER BY id DESC LIMIT 1")
    integrator = _integrator(leases, now, None if last is None else load_time(last[0]))
    result = {
        "all": False,
        "states": list(ACTIVE),
        "now": stamp(now),
        "typical_apply_seconds": None if typical is None else int(typical.total_seconds()),
        "integrator": integrator_json(integrator),  # type: ignore[arg-type]
        "candidates": [row_json(r, now) for r in rows],  # type: ignore[arg-type]
        "controls": {"paused": None, "draining": None},
    }
    text = _queue_table(rows, now)
    if integrator.state == "down":
        text += (
            f"integrator DOWN: {integrator.owner} stopped renewing its lease; gone since "
            f"{stamp(integrator.since)}; run `mergegate recover` (or `mergegate run`)\n"
        )
    return result, text


def _median(values: list[float]) -> float:
    """``statistics.median``, without importing statistics (decimal, fractions, random)."""
    data = sorted(values)
    half = len(data) // 2
    if len(data) % 2 == 1:
        return data[half]
    return (data[half - 1] + data[half]) / 2


def _rank(candidates: list[Candidate], queue: list[int]) -> list[tuple[Candidate, int | None]]:
    """queueview.rank: leased first, then queued in stored order, then the others, by id."""
    place = {cid: n for n, cid in enumerate(queue)}

    def key(c: Candidate) -> tuple[object, ...]:
        group = 0 if c.state in LEASED else 1 if c.state in QUEUED else 2
        return (group, place.get(c.id, len(place)), c.id) if group == 1 else (group, c.id)

    ranked = sorted(candidates, key=key)
    numbers = {c.id: n for n, c in enumerate((c for c in ranked if c.state in QUEUED), 1)}
    return [(c, numbers.get(c.id)) for c in ranked]


def _rows(
    listed: list[tuple[Candidate, int | None]], now: datetime, typical: timedelta | None
) -> list[_Row]:
    """listing.queue_rows for candidates that carry no block (every one is active)."""
    flying = sorted((c for c, _ in listed if c.state in LEASED), key=lambda c: (c.updated_at, c.id))
    slots = {c.id: n for n, c in enumerate(flying, start=1)}
    chain_end = now
    if typical is not None and flying:
        chain_end = max(now, *(c.updated_at + typical for c in flying))
    by_position = {pos: c for c, pos in listed if pos is not None}
    rows = []
    for c, pos in listed:
        slot = slots.get(c.id)
        eta: datetime | None = None
        if typical is not None and slot is not None:
            eta = max(now, c.updated_at + typical)
        elif typical is not None and pos is not None:
            eta = chain_end + typical * pos
        waiting: str | None = None
        if slot is not None:
            waiting = None if slot == 1 else f"slot {slot - 1}: {flying[slot - 2].key.slug}"
        elif pos is not None:
            if pos > 1:
                waiting = f"position {pos - 1}: {by_position[pos - 1].key.slug}"
            elif flying:
                waiting = f"slot {len(flying)}: {flying[-1].key.slug}"
            else:
                waiting = "an integrator: `mergegate run` takes the queue"
        elapsed = max(now - c.updated_at, timedelta(0))
        rows.append(_Row(c, pos, slot, elapsed, waiting, eta))
    return rows


def _integrator(
    leases: list[tuple[Any, ...]], now: datetime, last_move: datetime | None
) -> _Integrator:
    """status._integrator: alive, down or idle, from the leases."""
    if not leases:
        return _Integrator("idle", last_move)
    owner, acquired, expires = max(
        ((o, load_time(a), load_time(e)) for o, a, e in leases), key=lambda le: le[2]
    )
    if expires > now:
        return _Integrator("alive", acquired, owner, expires)
    return _Integrator("down", expires, owner, expires)


def _queue_table(rows: list[_Row], now: datetime) -> str:
    """human.queue_table."""
    if not rows:
        return "no candidates\n"
    body = [
        (
            "-" if r.position is None else str(r.position),
            "-" if r.slot is None else str(r.slot),
            r.candidate.key.slug,
            r.candidate.key.branch,
            r.candidate.key.sha[:SHA_SHOWN],
            str(r.candidate.state),
            str(r.candidate.seq),
            short_time(r.candidate.updated_at),
            "-" if r.elapsed is None else short_span(r.elapsed),
            "-" if r.eta is None else f"~{short_span(r.eta - now)}",
            r.waiting_for or "-",
        )
        for r in rows
    ]
    headers = ("POS", "SLOT", "SLUG", "BRANCH", "SHA", "STATE", "SEQ", "UPDATED (UTC)")
    return table((*headers, "ELAPSED", "ETA", "WAITING FOR"), body)
