"""The seam between the Engine and whatever integrates a candidate.

``mergegate.apply`` ships a git implementation; an orchestrator may plug in its
own. :func:`apply_candidate` drives one full apply through the Engine, so both
paths end in the same records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs

from .records import BlockedReport, CandidateKey

__all__ = [
    "AlreadyIntegrated",
    "Applier",
    "ApplyResult",
    "Blocked",
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


class Applier(Protocol):
    """Integrates one candidate into ``main``, or says why it could not."""

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        """Try to integrate ``key``. Call ``heartbeat`` while working and right before
        moving ``main``: it raises if the integration lease was lost, and then
        ``main`` must stay where it is."""

    def main_sha(self) -> str:
        """The sha ``main`` points at now."""
