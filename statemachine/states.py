"""The six candidate states and the seven events, as closed enumerations."""

from __future__ import annotations

import enum

__all__ = ["Event", "State"]


class State(enum.StrEnum):
    """Where a candidate is in its lifecycle. Only ``INTEGRATED`` is terminal."""

    PENDING = "pending"
    APPLYING = "applying"
    BLOCKED = "blocked"
    REMEDIATING = "remediating"
    RETRY = "retry"
    INTEGRATED = "integrated"

    @property
    def is_terminal(self) -> bool:
        return self is State.INTEGRATED


class Event(enum.StrEnum):
    """What can happen to a candidate; each event is one row group of the table."""

    SUBMIT = "submit"
    START_APPLY = "start_apply"
    INTEGRATE = "integrate"
    BLOCK = "block"
    INTERRUPT = "interrupt"
    START_REMEDIATION = "start_remediation"
    RESUME = "resume"
