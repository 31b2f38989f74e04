"""The candidate states and the events, as closed enumerations; the moves are in the table."""

from __future__ import annotations

import enum

__all__ = ["Event", "State"]


class State(enum.StrEnum):
    """Where a candidate is in its lifecycle; which states are terminal, the table says."""

    PENDING = "pending"
    APPLYING = "applying"
    BLOCKED = "blocked"
    REMEDIATING = "remediating"
    RETRY = "retry"
    INTEGRATED = "integrated"
    WITHDRAWN = "withdrawn"


class Event(enum.StrEnum):
    """What can happen to a candidate; each event is one row group of the table."""

    SUBMIT = "submit"
    START_APPLY = "start_apply"
    INTEGRATE = "integrate"
    BLOCK = "block"
    INTERRUPT = "interrupt"
    START_REMEDIATION = "start_remediation"
    RESUME = "resume"
    SUPERSEDE = "supersede"
    WITHDRAW = "withdraw"
