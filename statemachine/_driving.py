"""Driving an applier: start a candidate's apply, let the applier work, then record its result."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._leases import heartbeat as heartbeat_of
from .applier import AlreadyIntegrated, Applier, Blocked, Integrated
from .errors import ConcurrencyConflict
from .records import Outcome
from .states import Event, State

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["finish_apply"]


def finish_apply(engine: Engine, started: Outcome, applier: Applier, owner: str) -> Outcome:
    """Run ``applier`` on the candidate ``started`` began, under its lease; log what it did."""
    key, seq = started.candidate.key, started.candidate.seq
    # The lease was taken (or renewed) at this time, for lease_ttl.
    # (An idempotent replay reports the older entry's time: it renews sooner.)
    renewed = started.transition.at if started.transition is not None else engine.clock()

    def heartbeat(fence: bool = True) -> None:
        """Renew the lease; a routine beat (``fence=False``) only after a third of its TTL.

        A routine beat while more than two-thirds of the TTL remains costs a
        durable commit and tells nothing new, so it is skipped. The fence,
        the call right before ``main`` moves (the default, so an applier that
        does not say which beat it makes is always checked), always asks the
        store: that is what stops a lease lost to ``recover`` from moving main.
        """
        nonlocal renewed
        now = engine.clock()
        if not fence and now - renewed < engine.lease_ttl / 3:
            return
        heartbeat_of(engine, owner)
        renewed = now

    result = applier.apply(key, heartbeat)
    match result:
        case Blocked(report):
            return engine.block(key.slug, report, expected_seq=seq)
        case Integrated(main_sha) | AlreadyIntegrated(main_sha):
            try:
                return engine.integrate(key.slug, main_sha=main_sha, expected_seq=seq)
            except ConcurrencyConflict:
                # A recovery may settle the move between the applier's commit
                # and this record (the lease ran out during a slow fenced push):
                # the candidate is then integrated exactly once, at this sha.
                settled = _integrated_at(engine, started.candidate.id, main_sha)
                if settled is None:
                    raise
                return settled
    raise TypeError(f"unknown apply result {result!r}")  # pragma: no cover


def _integrated_at(engine: Engine, candidate_id: int, main_sha: str) -> Outcome | None:
    """The candidate's outcome if its last move integrated it at ``main_sha``, else ``None``."""
    candidate = engine.store.candidate_by_id(candidate_id)
    if candidate is None or candidate.state is not State.INTEGRATED:
        return None
    last = engine.store.history(candidate_id)[-1]
    if last.event is not Event.INTEGRATE or last.main_sha != main_sha:
        return None
    return Outcome(candidate, last)
