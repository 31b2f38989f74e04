"""The seam between the Engine and whatever integrates a candidate.

``mergegate.apply`` ships a git implementation; an orchestrator may plug in its
own. :func:`apply_candidate` drives one full apply through the Engine, so both
paths end in the same records.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

import attrs

from .records import BlockedReport, CandidateKey

__all__ = [
    "AlreadyIntegrated",
    "Applier",
    "ApplyResult",
    "Blocked",
    "HeldMain",
    "Integrated",
]


@attrs.frozen
class Integrated:
    """``main`` was moved by compare-and-swap from ``previous_main`` to ``main_sha``."""

    main_sha: str
    previous_main: str
    attempts: tuple[str, ...] = ()


@attrs.frozen
class AlreadyIntegrated:
    """The candidate's sha is already contained in ``main``; nothing was moved."""

    main_sha: str


@attrs.frozen
class Blocked:
    """The apply failed; ``main`` was not moved."""

    report: BlockedReport


ApplyResult = Integrated | AlreadyIntegrated | Blocked


@attrs.frozen
class HeldMain:
    """``main`` held still for recovery: its canonical sha, and a stale lock removed first.

    ``stale_lock`` names the lock of a dead mover that was removed to take the
    hold (``None`` if there was none).
    """

    main_sha: str
    stale_lock: str | None = None


class Applier(Protocol):
    """Integrates one candidate into ``main``, or says why it could not."""

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        """Try to integrate ``key``. Call ``heartbeat`` while working, and once more
        while ``main`` is held for the move (see :meth:`hold_main`): it raises if
        the integration lease was lost, and then ``main`` must stay where it is."""

    def main_sha(self) -> str:
        """The sha ``main`` points at now."""

    def hold_main(self, *, break_stale: bool = False) -> AbstractContextManager[HeldMain]:
        """Hold ``main`` still: while the ``with`` block runs, no apply moves ``main``.

        This is the fence's other side: wrap ``Engine.recover`` in it, and pass
        the yielded ``main_sha`` to it, so recovery never decides while a move is
        in flight. Raises MoveInFlight if a mover holds ``main`` now. With
        ``break_stale`` (allowed only when no lease is live), a lock whose mover
        is provably dead is removed first, and named in ``HeldMain.stale_lock``.
        """
