"""What the queue looks like now, read once from the store: the rows of ``list``, the
integrator's liveness and the typical apply time, shared by ``list``, ``report`` and ``serve``.

Every read here is bounded by what is active or recent, never by the whole
log (docs/performance.md, "Reading the queue").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs

from mergegate.statemachine import TABLE, Lease, QueueControls, Reason, State, Store

from .listing import Integrator, QueueRow, queue_listing, queue_rows, typical_apply
from .payload import integrator_json, row_json  # in payload.py: fastread.py reuses them

__all__ = [
    "ACTIVE",
    "RECENT_APPLIES",
    "Integrator",
    "Status",
    "integrator_json",
    "read_status",
    "row_json",
]

#: The states of the active queue, in the table's order: what ``list`` shows by default.
ACTIVE: tuple[State, ...] = tuple(st for st in State if st in TABLE.active)

#: How many recent integrations the ETA's typical apply time is the median of.
RECENT_APPLIES = 20


@attrs.frozen
class Status:
    """The queue at ``now``."""

    now: datetime
    rows: tuple[QueueRow, ...]
    typical: timedelta | None
    samples: int
    integrator: Integrator
    #: The pause and the drain in force (mergegate.statemachine.controls).
    controls: QueueControls = attrs.Factory(QueueControls)
    #: How many candidates are queued (whatever ``list`` was asked to show).
    queued: int = 0


def _integrator(leases: list[Lease], now: datetime, last_move: datetime | None) -> Integrator:
    if not leases:
        return Integrator("idle", last_move)
    lease = max(leases, key=lambda le: le.expires_at)
    if lease.expires_at > now:
        return Integrator("alive", lease.acquired_at, lease.owner, lease.expires_at)
    return Integrator("down", lease.expires_at, lease.owner, lease.expires_at)


def read_status(store: Store, now: datetime, states: Sequence[State] | None = None) -> Status:
    """The queue's rows (kept to ``states``, by default the active ones), liveness and
    typical apply time.

    Active states are read through the active index; a filter with a finished
    state (``list --all``) reads every candidate, as it must.
    """
    if states is None:
        states = ACTIVE
    queue = store.queue()
    if all(st in TABLE.active for st in states):
        listed = queue_listing(store.active_candidates(), states=states, queue=queue)
    else:
        listed = queue_listing(store.candidates(), states=states, queue=queue)
    follow_ups = {}
    approvals = {}
    for c, _ in listed:
        if c.state in TABLE.carrying_blocked:
            record = store.blocked_record(c.key)
            if record is not None:
                follow_ups[c.id] = record.follow_up_slug
                if record.reason is Reason.CONFIG_CHANGED:
                    approvals[c.id] = store.approval(c.key.slug, c.key.sha) is not None
    seconds = store.recent_apply_seconds(RECENT_APPLIES)
    typical = typical_apply(seconds)
    controls = store.queue_controls()
    rows = queue_rows(
        listed,
        now=now,
        typical=typical,
        follow_ups=follow_ups,
        approvals=approvals,
        paused_by=None if controls.paused is None else controls.paused.actor,
    )
    integrator = _integrator(store.leases(), now, store.last_move_at())
    return Status(now, tuple(rows), typical, len(seconds), integrator, controls, len(queue))
