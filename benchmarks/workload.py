"""What the figures share: the scale of a run, fixed identities, and the bare `transitions` machine.

The bare machine is built from mergegate's own table, so the baselines run the
same lifecycle the Engine enforces.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import attrs
from transitions import Machine

from mergegate.statemachine import CandidateKey, State
from mergegate.statemachine._machine import lifecycle

__all__ = [
    "BASE_TIME",
    "MAIN",
    "SHA",
    "PlainModel",
    "Scale",
    "bare_machine",
    "fresh_slug",
    "key_for",
]

SHA = "0123456789abcdef0123456789abcdef01234567"
MAIN = "fedcba9876543210fedcba9876543210fedcba98"
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
_serial = itertools.count()


@attrs.frozen
class Scale:
    """How much work each figure does; ``quick`` is a smoke run, ``full`` the documented one."""

    runs: int
    persisted: int  # transitions per run of figure 1
    batch: int  # candidates per engine.batch() in figure 2
    decisions: int  # decisions per run of figure 3
    memory_candidates: int
    blocked: int  # candidates blocked per run of figure 5
    log_sizes: tuple[int, ...]  # figure 6, ascending; the ratio is the last over ``log_base``
    log_base: int
    query_repeats: int

    @classmethod
    def quick(cls) -> Scale:
        """Seconds: enough to show that every figure runs."""
        return cls(3, 30, 100, 2_000, 5_000, 3, (1_000, 10_000), 1_000, 10)

    @classmethod
    def full(cls) -> Scale:
        """The documented run: a few minutes on two cores."""
        sizes = (1_000, 10_000, 100_000, 1_000_000)
        return cls(7, 300, 1_000, 40_000, 100_000, 20, sizes, 10_000, 50)


def fresh_slug() -> str:
    """A slug no earlier call returned in this process."""
    return f"bench-{next(_serial)}"


def key_for(slug: str) -> CandidateKey:
    """The identity the figures submit for ``slug``."""
    return CandidateKey(slug, f"feature/{slug}", SHA)


_TRANSITIONS_STATES = [s.value for s in State]
_TRANSITIONS_TABLE = [
    {"trigger": e.value, "source": s.value, "dest": d.value}
    for s, e, d in lifecycle().table.edges()
    if s is not None and s is not d
] + [
    {"trigger": e.value, "source": s.value, "dest": None}
    for s, e, d in lifecycle().table.edges()
    if s is not None and s is d
]


class PlainModel:
    """A plain model object for ``transitions``; it may not be frozen or slotted."""


def bare_machine(model: object | None = None) -> Any:
    """A bare `transitions` machine on mergegate's lifecycle, as a user would build one."""
    return Machine(
        model=model,
        states=_TRANSITIONS_STATES,
        transitions=_TRANSITIONS_TABLE,
        initial="pending",
        auto_transitions=False,
    )
