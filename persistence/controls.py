"""The queue-controls log (migration 14) for every SQL store: what is in force, and its writes.

``queue_controls`` is append-only. What is in force is read from its newest
rows: the newest ``pause``/``unpause`` row says whether the queue is paused,
the newest ``drain``/``undrain`` row whether it is draining; each pair has a
partial index, so the read is two index probes however long the log grows.

On PostgreSQL a control's check and its write take the queue's advisory lock,
the one claims take, so two operators cannot both pause, and a claim after a
pause's commit sees it. The controls read inside a move (is the queue paused,
is it draining) take no lock: a claim holds the queue's lock and then a
candidate's, a move the candidate's first, and a second order would deadlock.
So on PostgreSQL an explicit start or a submit that runs while a pause or a
drain commits may still pass: it is ordered before the control.
"""

from __future__ import annotations

from typing import Any, Protocol

from mergegate.statemachine import Control, ControlEntry, QueueControls

from .dialect import Dialect
from .rows import _time, named

__all__ = [
    "CONTROL",
    "CONTROLS_IN_FORCE",
    "INSERT_CONTROL",
    "PROMOTE",
    "ControlReads",
    "control_entry",
    "controls_in_force",
]

CONTROL = ("id", "action", "actor", "at", "why", "slug", "requeue")

#: The newest row of each pair: what is in force (at most two rows).
CONTROLS_IN_FORCE = (
    f"SELECT {named(CONTROL)} FROM queue_controls WHERE id IN ("
    "(SELECT id FROM queue_controls WHERE action IN ('pause', 'unpause') "
    "ORDER BY id DESC LIMIT 1), "
    "(SELECT id FROM queue_controls WHERE action IN ('drain', 'undrain') "
    "ORDER BY id DESC LIMIT 1))"
)

#: First place: one before the smallest position of every active candidate, the
#: applying ones included, so a chain link given back to the queue comes after it.
PROMOTE = (
    "UPDATE candidates SET queue_pos = "
    "(SELECT MIN(m.queue_pos) FROM candidates m WHERE m.active) - 1 WHERE id = ?"
)

INSERT_CONTROL = (
    "INSERT INTO queue_controls (action, actor, at, why, slug, requeue) "
    f"VALUES (?, ?, ?, ?, ?, ?) RETURNING {named(CONTROL)}"
)


def control_entry(d: Dialect, row: Any) -> ControlEntry:
    """A row of ``queue_controls`` as its record."""
    return ControlEntry(
        id=int(row["id"]),
        action=Control(row["action"]),
        actor=d.text_out(row["actor"]),
        at=_time(row["at"]),
        why=d.text_out(row["why"]),
        slug=row["slug"],
        requeue=bool(row["requeue"]),
    )


def controls_in_force(d: Dialect, rows: list[Any]) -> QueueControls:
    """What :data:`CONTROLS_IN_FORCE`'s rows say is in force."""
    entries = [control_entry(d, r) for r in rows]
    paused = next((e for e in entries if e.action is Control.PAUSE), None)
    draining = next((e for e in entries if e.action is Control.DRAIN), None)
    return QueueControls(paused=paused, draining=draining)


class _Host(Protocol):
    def _query(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]: ...

    @property
    def _dialect(self) -> Dialect: ...


class ControlReads:
    """Mixed into :class:`~.sqlstore.SQLStore`: the controls' reads of the Store protocol."""

    def queue_controls(self: _Host) -> QueueControls:
        return controls_in_force(self._dialect, self._query(CONTROLS_IN_FORCE))

    def control_log(self: _Host, limit: int = 20, *, slug: str | None = None) -> list[ControlEntry]:
        # No index on slug: the log holds operators' actions, not one row per move.
        where, params = ("", ()) if slug is None else (" WHERE slug = ?", (slug,))
        rows = self._query(
            f"SELECT {named(CONTROL)} FROM queue_controls{where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [control_entry(self._dialect, r) for r in reversed(rows)]

    def last_control_id(self: _Host) -> int:
        """The id of the newest control, ``0`` when none was ever logged."""
        rows = self._query("SELECT COALESCE(MAX(id), 0) FROM queue_controls")
        return int(rows[0][0])
