"""Interruptions the integrator caused: requeued, not blocked, until a candidate keeps causing them.

A stop signal, a crash, a lost lease or a failure of the host (a held lock, a
busy store) ends an apply through no fault of its candidate. Such an apply is
settled by a ``requeue`` whose ``interrupted`` field names the cause (its note,
for people, reads :data:`INTERRUPTED` and the cause): the candidate keeps its
place, and no follow-up or "blocked" notification is made. Only a candidate
whose applies were interrupted :data:`MAX_INTERRUPTIONS` times in a row
(counted from the log: the interruption requeues since its last other move) is
blocked ``apply_interrupted``, with the time and cause of each: it is likely
the one killing its integrator (a check that exhausts memory, a test that
signals its parent).
"""

from __future__ import annotations

from collections.abc import Sequence

from .records import Transition
from .states import Event

__all__ = ["INTERRUPTED", "MAX_INTERRUPTIONS", "interruptions", "interruption_evidence"]

#: The start of every interruption requeue's logged reason.
INTERRUPTED = "interrupted: "

#: Interruptions in a row after which the candidate, not the integrator, is held at fault.
MAX_INTERRUPTIONS = 3


def interruptions(history: Sequence[Transition]) -> list[Transition]:
    """The interruption requeues of ``history`` since the candidate's last other move, oldest first.

    ``start_apply`` entries between them do not break the run; any other
    move (an integrate, a block, a supersede, a plain requeue of a chain
    link whose base moved) does.
    """
    found: list[Transition] = []
    for entry in reversed(history):
        if entry.event is Event.START_APPLY:
            continue
        if entry.event is Event.REQUEUE and entry.interrupted is not None:
            found.append(entry)
            continue
        break
    found.reverse()
    return found


def interruption_evidence(earlier: Sequence[Transition], now: str) -> str:
    """The detail of the block that ends a run of interruptions: each one's time and cause."""
    lines = [
        f"{len(earlier) + 1} applies in a row were interrupted; "
        "this candidate may be what stops its integrator:"
    ]
    for entry in earlier:
        lines.append(f"- {entry.at.isoformat()}: {entry.interrupted}")
    lines.append(f"- now: {now}")
    return "\n".join(lines)
