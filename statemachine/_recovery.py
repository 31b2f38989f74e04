"""Recovery: settle the applies whose integrator stopped, died or stalled past its lease."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._interruptions import MAX_INTERRUPTIONS, interruption_evidence, interruptions
from ._validation import check_sha
from .calls import Request
from .errors import ConcurrencyConflict, IllegalTransition
from .records import BlockedReport, Candidate, Evidence, Lease, Outcome, Reason
from .states import Event

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["interruption", "recover"]


def recover(
    engine: Engine,
    main_sha: str,
    contains: Callable[[str], bool] | None,
    abandoned: Callable[[Lease], bool] | None,
    why: str | None = None,
) -> list[Outcome]:
    """See :meth:`Engine.recover <.engine.Engine.recover>`."""
    check_sha(main_sha, field="main sha")
    now = engine.clock()
    outcomes = []
    for lease in engine.store.leases():
        expired = lease.expires_at <= now
        if not expired and (abandoned is None or not abandoned(lease)):
            continue
        if lease.candidate_id is None:
            outcomes.extend(_recover_chain(engine, lease, main_sha, contains, why, expired))
            continue
        candidate = engine.store.candidate_by_id(lease.candidate_id)
        if candidate is None:
            continue
        if contains is not None and contains(candidate.key.sha):
            try:
                outcomes.append(
                    engine.integrate(
                        candidate.key.slug, main_sha=main_sha, expected_seq=candidate.seq
                    )
                )
            except (ConcurrencyConflict, IllegalTransition):
                continue
            continue
        cause = _cause("apply", lease, expired)
        settle = (
            interruption(engine, candidate, main_sha, lease, cause)
            if why is None
            else _requeue(candidate, why)
        )
        try:
            outcomes.append(engine.fire(settle))
        except (ConcurrencyConflict, IllegalTransition):
            # Another recoverer, or the holder itself, finished it first.
            continue
    return outcomes


def _cause(kind: str, lease: Lease, expired: bool) -> str:
    """Why recovery settles ``lease`` (an ``apply`` or a ``chain`` lease): which of the two."""
    held = f"the {kind} lease held by {lease.owner}"
    if expired:
        return f"{held} expired at {lease.expires_at.isoformat()}"
    return f"{held} was abandoned: its process is gone"


def _recover_chain(
    engine: Engine,
    lease: Lease,
    main_sha: str,
    contains: Callable[[str], bool] | None,
    why: str | None,
    expired: bool,
) -> list[Outcome]:
    """Settle an expired chain lease: its links are integrated if main has them, else requeued.

    The lease is dropped in the same transaction, so the stalled holder's
    next heartbeat (which it makes under the fence, before any move) fails,
    and no link is left ``applying`` without a lease. With ``why`` each link
    is requeued with that note and no interruption is counted.
    """
    links = engine.chain_links(lease)
    cause = _cause("chain", lease, expired)
    with engine.batch() as batch:
        held = batch.tx.lease(engine.lease_name)
        if held != lease:
            # Renewed, released or already recovered since it was read.
            return []
        batch.tx.drop_chain_lease(engine.lease_name, lease.owner)
        for link in links:
            if contains is not None and contains(link.key.sha):
                batch.integrate(link.key.slug, main_sha=main_sha, expected_seq=link.seq)
            elif why is not None:
                batch.fire(_requeue(link, why))
            else:
                batch.fire(interruption(engine, link, main_sha, lease, cause))
    return batch.outcomes


def _requeue(candidate: Candidate, why: str) -> Request:
    # The holder's own release for a cause that is not the candidate's (the host was
    # busy, an operator's recall): a plain requeue, never counted as an interruption.
    return Request(Event.REQUEUE, candidate.key.slug, why=why, expected_seq=candidate.seq)


def interruption(
    engine: Engine, candidate: Candidate, main_sha: str, lease: Lease, cause: str
) -> Request:
    """See :meth:`Engine.interruption <.engine.Engine.interruption>`."""
    earlier = interruptions(engine.store.history(candidate.id))
    if len(earlier) + 1 < MAX_INTERRUPTIONS:
        return Request(
            Event.REQUEUE, candidate.key.slug, interrupted=cause, expected_seq=candidate.seq
        )
    report = BlockedReport(
        Reason.APPLY_INTERRUPTED,
        main_sha,
        Evidence(lease_owner=lease.owner, lease_since=lease.acquired_at),
        detail=interruption_evidence(earlier, cause),
    )
    return Request(Event.INTERRUPT, candidate.key.slug, report=report, expected_seq=candidate.seq)
