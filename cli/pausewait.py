"""How ``mergegate run`` honours a paused queue: it says so once, and waits for the unpause.

A pause does not end ``run`` (nothing ordinary does): the store's claim finds
no head while the queue is paused, and the loop then waits here instead of for
new candidates. It wakes when a control is logged (the store's control waiter:
PostgreSQL's LISTEN/NOTIFY, SQLite's data version), not on a poll interval;
``poll`` still bounds each wait, so recovery runs meanwhile.

A ``pause --requeue`` that comes while ``run`` applies is heard by the
control watcher (``controlwatch.py``), which has the work in flight given
back; the run then comes here, paused, like any other.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import attrs

from mergegate.followups.text import one_line

from .payload import stamp

if TYPE_CHECKING:
    from mergegate.statemachine import ControlEntry, QueueControls, Store

__all__ = ["ControlWaiter", "PauseWait"]


@runtime_checkable
class ControlWaiter(Protocol):
    """A store that can wait for a new control (both SQL stores): woken by its commit."""

    def wait_for_control(self, after: int, timeout: float) -> bool: ...


@attrs.define
class PauseWait:
    """The pause and the drain this run has announced (by the control's id), each said once."""

    said: int | None = None
    #: The drain this run announced, so it is said once (and its end too).
    drain_said: int | None = None
    #: The newest control id looked at (:meth:`news`): a read only when one was logged since.
    seen: int | None = None

    def paused(self, store: Store) -> ControlEntry | None:
        """The pause in force, or ``None``."""
        return store.queue_controls().paused

    def note(self, entry: ControlEntry) -> str | None:
        """The line announcing ``entry``, the first time it is seen; else ``None``."""
        if self.said == entry.id:
            return None
        self.said = entry.id
        why = "" if entry.why is None else f": {one_line(entry.why)}"
        return (
            f"queue paused by {one_line(entry.actor)} since {stamp(entry.at)}{why}; "
            "nothing new is applied until `mergegate unpause`"
        )

    def resumed(self) -> str | None:
        """The line saying the announced pause ended, once; ``None`` if none was announced."""
        if self.said is None:
            return None
        self.said = None
        return "queue unpaused: taking the queue again"

    def drain(self, entry: ControlEntry | None) -> str | None:
        """The line announcing the drain ``entry`` (or its end, for ``None``), once each."""
        if entry is None:
            if self.drain_said is None:
                return None
            self.drain_said = None
            return "queue undrained: new submissions are taken again"
        if self.drain_said == entry.id:
            return None
        self.drain_said = entry.id
        why = "" if entry.why is None else f": {one_line(entry.why)}"
        return (
            f"queue draining (by {one_line(entry.actor)}{why}): "
            "new submissions refused; the queued ones go on"
        )

    def changes(self, controls: QueueControls) -> list[str]:
        """The lines for what ended or began since last said: an unpause, a drain, an undrain.

        A pause that began is said by :meth:`note`, where the run waits for it.
        """
        lines = [self.drain(controls.draining)]
        if controls.paused is None:
            lines.insert(0, self.resumed())
        return [line for line in lines if line is not None]

    def news(self, store: Store, newest: int) -> list[str]:
        """:meth:`changes`, read from ``store`` only if a control newer than the last seen
        (``newest`` is the newest control's id) was logged."""
        if newest == self.seen:
            return []
        self.seen = newest
        return self.changes(store.queue_controls())

    def wait(self, store: Store, entry: ControlEntry, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a control after ``entry``; whether one came.

        A store without a control waiter is polled: this sleeps ``timeout``.
        """
        if not isinstance(store, ControlWaiter):
            time.sleep(timeout)
            return False
        return store.wait_for_control(entry.id, timeout)
