"""Recovery as `recover` and `run` do it: under git's lock on main, dead holders at once.

A lease is settled when it expired, or at once when its owner names a process
on this host that is gone (git's ``gc.pid`` rule, with the process start time
against pid reuse: see ``mergegate.apply.liveness``). Either way the decision
is taken while ``main`` is held, so no move of ``main`` can be in flight.

Whoever settles a dead integrator's work says so: ``integrator_down`` to the
``[[notify]]`` commands, and, when the settler is a ``run`` that carries on
with the queue, ``integrator_back``. Settling is a committed move guarded by
the candidate's seq (a chain's, by the lease itself), so of two integrators
racing to settle the same lease exactly one commits it, and only that one
announces it (docs/configuration.md, ``[[notify]]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from mergegate.apply import MainCheckedOut, holder_gone
from mergegate.statemachine import Lease, Outcome

from .notice import Settled, integrator_back_notice, integrator_down_notice

if TYPE_CHECKING:
    from mergegate.apply import GitApplier

    from .session import Session

__all__ = ["Recovery", "abandoned", "recover_now"]


@attrs.frozen
class Recovery:
    """What one recovery settled, and the stale lock of a dead mover it removed first."""

    outcomes: tuple[Outcome, ...] = ()
    stale_lock: str | None = None
    #: The dead or stalled integrators' leases this recovery settled, with their moves.
    settled: tuple[Settled, ...] = ()


def abandoned(lease: Lease) -> bool:
    """Whether ``lease``'s owner is a process on this host that is gone."""
    return holder_gone(lease.owner)


def _settleable(leases: list[Lease], now: datetime) -> bool:
    return all(lease.expires_at <= now or abandoned(lease) for lease in leases)


def _settled(leases: Sequence[Lease], outcomes: Sequence[Outcome], now: datetime) -> list[Settled]:
    """The leases ``outcomes`` settled: a move returned here is one this process committed.

    A link of a chain holds no lease of its own: its move belongs to the chain
    lease (one per main, so at most one was read).
    """
    singles = {le.candidate_id: le for le in leases if le.candidate_id is not None}
    chains = [le for le in leases if le.candidate_id is None]
    moves: dict[Lease, list[Outcome]] = {}
    for outcome in outcomes:
        lease = singles.get(outcome.candidate.id) or (chains[0] if len(chains) == 1 else None)
        if lease is not None:
            moves.setdefault(lease, []).append(outcome)
    return [
        Settled(lease, tuple(mine), "expired" if lease.expires_at <= now else "process_gone")
        for lease, mine in moves.items()
    ]


def _announce(s: Session, settled: Sequence[Settled], serving: str | None) -> None:
    """Send ``integrator_down`` for each settled lease, then ``integrator_back`` if ``serving``."""
    config = s.config()
    if not settled or not config.notify:
        return
    from .notify import announce  # noqa: PLC0415

    ttl = timedelta(seconds=config.lease_ttl)
    for one in settled:
        document = integrator_down_notice(
            one, now=datetime.now(UTC), ttl=ttl, noticed_by=serving or s.actor
        )
        announce(config.notify, "integrator_down", document, config.repo, s.keepalive)
    if serving is not None:
        document = integrator_back_notice(settled, now=datetime.now(UTC), ttl=ttl, owner=serving)
        announce(config.notify, "integrator_back", document, config.repo, s.keepalive)


def recover_now(
    s: Session,
    main: Callable[[], str],
    applier: GitApplier | None = None,
    *,
    serving: str | None = None,
) -> Recovery:
    """Settle every expired or abandoned apply of ``s``'s store; ``main`` gives main's sha now.

    ``main`` is asked only when a checked-out ``main`` keeps the applier from
    being made (otherwise ``main`` is read under its lock): ``run`` recovers after
    every candidate, and almost always finds nothing to settle.

    ``applier`` is the session's, if the caller built it already. ``serving``
    is the lease owner of the ``run`` that recovers, which carries on with the
    queue: it announces ``integrator_back`` after a dead integrator's
    ``integrator_down``. Raises MoveInFlight if a live mover holds ``main``.
    """
    engine, repo = s.engine(), s.repository()
    leases = s.store().leases()
    now = datetime.now(UTC)
    try:
        applier = applier if applier is not None else s.applier()
    except MainCheckedOut:
        # No apply can move a checked-out main, so there is no move to fence.
        sha_now = main()
        outcomes = tuple(
            engine.recover(
                sha_now, contains=lambda sha: repo.is_ancestor(sha, sha_now), abandoned=abandoned
            )
        )
        settled = _settled(leases, outcomes, now)
        _announce(s, settled, serving)
        return Recovery(outcomes, settled=tuple(settled))
    if not _settleable(leases, now):
        # The one lease is live and its holder runs: nothing to settle, no lock to break.
        return Recovery()
    if not leases and not applier.main_lock.exists():
        return Recovery()
    # No lease covers a move now, so a lock whose mover is dead may be broken.
    with applier.hold_main(break_stale=True) as held:
        # A candidate main already contains was integrated by an apply that
        # died before it recorded so: recover integrates it instead of blocking it.
        outcomes = tuple(
            engine.recover(
                held.main_sha,
                contains=lambda sha: applier.contains(sha, held.main_sha),
                abandoned=abandoned,
            )
        )
    # Announced once main is let go: a slow command must not hold up every mover.
    settled = _settled(leases, outcomes, now)
    _announce(s, settled, serving)
    return Recovery(outcomes, held.stale_lock, tuple(settled))
