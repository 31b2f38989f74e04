"""The one shared ``transitions`` machine that enforces :data:`~.table.TABLE`.

``transitions`` costs tens of KiB per ``Machine`` and refuses frozen attrs
models, so mergegate builds exactly one machine, with no model of its own, and
asks it about moves. Candidates stay immutable attrs values.
"""

from __future__ import annotations

import functools
from typing import Any

from transitions import Machine

from .states import Event, State
from .table import TABLE, Table

__all__ = ["LifecycleMachine", "lifecycle"]

# The creating event has no source state; the machine needs one to hang it on.
_NEW = "__new__"


class LifecycleMachine:
    """A read-only view of a ``transitions`` machine built from a :class:`Table`.

    The lookup table is read back out of the machine's own ``events`` after it
    is built, so a state or event that ``transitions`` would reject fails here,
    at start-up, and never at the moment a candidate moves.
    """

    def __init__(self, table: Table = TABLE) -> None:
        self.table = table
        self.machine: Any = Machine(
            model=None,
            states=[_NEW, *(s.value for s in State)],
            initial=_NEW,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=True,
        )
        for source, event, dest in table.edges():
            src = _NEW if source is None else source.value
            internal = table.destination(source, event) == source and source is not None
            self.machine.add_transition(
                trigger=event.value, source=src, dest=None if internal else dest.value
            )
        moves: dict[tuple[State | None, Event], State] = {}
        for name, ev in self.machine.events.items():
            for src, transitions in ev.transitions.items():
                for t in transitions:
                    source = None if src == _NEW else State(src)
                    moves[(source, Event(name))] = State(t.dest) if t.dest else State(src)
        expected = {(s, e): d for s, e, d in table.edges()}
        if moves != expected:
            raise RuntimeError("the transitions machine disagrees with the table")
        self._moves = moves

    def destination(self, source: State | None, event: Event) -> State | None:
        """Where ``event`` leads from ``source``; ``None`` when it is not allowed."""
        return self._moves.get((source, event))

    def is_internal(self, source: State | None, event: Event) -> bool:
        """True when ``event`` is allowed from ``source`` and leaves the state unchanged."""
        return source is not None and self._moves.get((source, event)) is source


@functools.cache
def lifecycle() -> LifecycleMachine:
    """The process-wide shared machine."""
    return LifecycleMachine()
