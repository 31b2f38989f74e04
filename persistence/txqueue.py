"""The queue's part of a SQL transaction: claiming its head, and its controls.

A claim names the queue's head in stored order; while the queue is paused it
names none. A control (pause, drain, promote) is logged as a row and read back
as the controls in force. On PostgreSQL claims and controls take the queue's
advisory lock, so they take turns; SQLite's ``BEGIN IMMEDIATE`` already does.
"""

from __future__ import annotations

from datetime import datetime

from mergegate.statemachine import Control, ControlEntry, QueueControls

from .controls import CONTROLS_IN_FORCE, INSERT_CONTROL, PROMOTE, control_entry, controls_in_force
from .txbase import TransactionBase

__all__ = ["QUEUE_ORDER", "QueueWrites"]

# The queue's order is the stored position: set on submit, kept by a requeue,
# renewed by a resume (a re-entry goes to the back). Ties cannot happen on one
# store; the id breaks them anyway, so the order is total.
QUEUE_ORDER = "queue_pos, id"
QUEUE_HEAD = f"SELECT slug FROM candidates WHERE queued ORDER BY {QUEUE_ORDER} LIMIT 1"


class QueueWrites(TransactionBase):
    """The queue's methods of the :class:`~mergegate.statemachine.Transaction`."""

    def claim_next(self) -> str | None:
        if not self._d.lock_sql:
            # SQLite: BEGIN IMMEDIATE already keeps every other writer out.
            if self.queue_controls().paused is not None:
                return None
            row = self._one(QUEUE_HEAD + self._d.claim_clause)
            return None if row is None else str(row[0])
        # Claims take turns on one advisory lock of the queue, held to commit:
        # a claimer that loses the lease race rolls back and the next one
        # reads the same head, never the one behind it (SKIP LOCKED did).
        self._lock("queue")
        if self.queue_controls().paused is not None:
            return None
        slug = None
        for _ in range(8):
            row = self._one(QUEUE_HEAD + self._d.claim_clause)
            if row is None or str(row[0]) == slug:
                return slug if row is not None else None
            # Hold the head's own lock, then look again: a move of it (a
            # withdraw, a supersede) that committed meanwhile is seen now.
            slug = str(row[0])
            self._lock("candidate", slug)
        return slug

    def queue_controls(self, *, for_update: bool = False) -> QueueControls:
        """The controls in force; ``for_update`` (a control's own check) takes the
        queue's lock first, see :mod:`.controls` for why a move's read does not."""
        if for_update and self._d.lock_sql:
            self._lock("queue")
        elif self._controls is not None:
            return self._controls
        self._controls = controls_in_force(self._d, self.rows(CONTROLS_IN_FORCE))
        return self._controls

    def log_control(
        self,
        action: Control,
        *,
        actor: str,
        at: datetime,
        why: str | None,
        slug: str | None = None,
        requeue: bool = False,
    ) -> ControlEntry:
        if self._d.lock_sql:
            self._lock("queue")
        d = self._d
        params = (action.value, d.text_in(actor), d.time_in(at), d.text_in(why), slug)
        row = self._one(INSERT_CONTROL, (*params, d.true if requeue else d.false))
        self._controls = None
        self.controlled = True
        return control_entry(d, row)

    def promote(self, candidate_id: int) -> None:
        if self._d.lock_sql:
            self._lock("queue")
        self.execute(PROMOTE, (candidate_id,))
