"""Recovery as `recover` and `run` do it: under git's lock on main, dead holders at once.

A lease is settled when it expired, or at once when its owner names a process
on this host that is gone (git's ``gc.pid`` rule, with the process start time
against pid reuse: see ``mergegate.apply.liveness``). Either way the decision
is taken while ``main`` is held, so no move of ``main`` can be in flight.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from mergegate.apply import MainCheckedOut, holder_gone
from mergegate.statemachine import Lease, Outcome

if TYPE_CHECKING:
    from mergegate.apply import GitApplier

    from .session import Session

__all__ = ["Recovery", "abandoned", "recover_now"]


@attrs.frozen
class Recovery:
    """What one recovery settled, and the stale lock of a dead mover it removed first."""

    outcomes: tuple[Outcome, ...] = ()
    stale_lock: str | None = None


def abandoned(lease: Lease) -> bool:
    """Whether ``lease``'s owner is a process on this host that is gone."""
    return holder_gone(lease.owner)


def _settleable(leases: list[Lease], now: datetime) -> bool:
    return all(lease.expires_at <= now or abandoned(lease) for lease in leases)


def recover_now(s: Session, main: str, applier: GitApplier | None = None) -> Recovery:
    """Settle every expired or abandoned apply of ``s``'s store; ``main`` is main's sha now.

    ``applier`` is the session's, if the caller built it already. Raises
    MoveInFlight if a live mover holds ``main``.
    """
    engine, repo = s.engine(), s.repository()
    try:
        applier = applier if applier is not None else s.applier()
    except MainCheckedOut:
        # No apply can move a checked-out main, so there is no move to fence.
        return Recovery(
            tuple(
                engine.recover(
                    main, contains=lambda sha: repo.is_ancestor(sha, main), abandoned=abandoned
                )
            )
        )
    leases = s.store().leases()
    if not _settleable(leases, datetime.now(UTC)):
        # The one lease is live and its holder runs: nothing to settle, no lock to break.
        return Recovery()
    if not leases and not applier.main_lock.exists():
        return Recovery()
    # No lease covers a move now, so a lock whose mover is dead may be broken.
    with applier.hold_main(break_stale=True) as held:
        # A candidate main already contains was integrated by an apply that
        # died before it recorded so: recover integrates it instead of blocking it.
        outcomes = engine.recover(
            held.main_sha,
            contains=lambda sha: applier.contains(sha, held.main_sha),
            abandoned=abandoned,
        )
    return Recovery(tuple(outcomes), held.stale_lock)
