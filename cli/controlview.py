"""The queue controls in force as ``list``, ``show`` and the status page say them.

Plain functions of the records (no click, no store), so the JSON documents,
the human lines and the page read one wording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mergegate.followups.text import one_line

from .payload import stamp

if TYPE_CHECKING:
    from mergegate.statemachine import ControlEntry, QueueControls

__all__ = ["control_json", "controls_json", "controls_text", "promoted_text"]


def control_json(entry: ControlEntry | None) -> dict[str, Any] | None:
    """One control as the JSON documents carry it (``null`` for none)."""
    if entry is None:
        return None
    return {
        "action": entry.action.value,
        "actor": entry.actor,
        "at": stamp(entry.at),
        "why": entry.why,
        "slug": entry.slug,
        "requeue": entry.requeue,
    }


def controls_json(now: QueueControls) -> dict[str, Any]:
    """What is in force, as ``list --json``, ``show --json`` and ``/api/queue`` carry it."""
    return {"paused": control_json(now.paused), "draining": control_json(now.draining)}


def _by(entry: ControlEntry) -> str:
    why = "" if entry.why is None else f": {one_line(entry.why)}"
    return f"by {one_line(entry.actor)} since {stamp(entry.at)}{why}"


def promoted_text(entry: ControlEntry) -> str:
    """Who put a candidate first, when and why (``show``)."""
    why = "" if entry.why is None else f": {one_line(entry.why)}"
    return f"by {one_line(entry.actor)} at {stamp(entry.at)}{why}"


def controls_text(now: QueueControls, queued: int) -> str:
    """The lines under ``list``'s table: empty when nothing is in force."""
    lines = ""
    if now.paused is not None:
        then = "; the work in flight was given back" if now.paused.requeue else ""
        lines += (
            f"queue PAUSED {_by(now.paused)}; nothing new is applied "
            f"until `mergegate unpause`{then}\n"
        )
    if now.draining is not None:
        left = (
            "DRAINED (the queue is empty)" if queued == 0 else f"DRAINING ({queued} still queued)"
        )
        lines += (
            f"queue {left} {_by(now.draining)}; no new candidate is admitted "
            "until `mergegate undrain`\n"
        )
    return lines
