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
    """A ``transitions`` machine built from a :class:`Table`, as a check of the table.

    The machine's own ``events`` are read back after it is built and must
    equal the table's edges, so a state or event that ``transitions`` would
    reject fails here, at start-up, and never at the moment a candidate moves.
    Lookups then go to the table's one moves dict: there is no second copy.
    """

    def __init__(self, table: Table = TABLE) -> None:
        self.table = table
        self.machine: Any = Machine(
            model=None,
            states=[_NEW, *(s.value for s in table.states)],
            initial=_NEW,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=True,
        )
        for source, event, dest in table.edges():
            internal = table.is_internal(source, event)
            self.machine.add_transition(
                trigger=event.value,
                source=_NEW if source is None else source.value,
                dest=None if internal else dest.value,
            )
        built = {
            (None if src == _NEW else src, name, t.dest or src)
            for name, ev in self.machine.events.items()
            for src, transitions in ev.transitions.items()
            for t in transitions
        }
        expected = {(s and s.value, e.value, d.value) for s, e, d in table.edges()}
        if built != expected:
            raise RuntimeError("the transitions machine disagrees with the table")

    def destination(self, source: State | None, event: Event) -> State | None:
        """Where ``event`` leads from ``source``; ``None`` when it is not allowed."""
        return self.table.destination(source, event)

    def is_internal(self, source: State | None, event: Event) -> bool:
        """True when ``event`` is allowed from ``source`` and leaves the state unchanged."""
        return self.table.is_internal(source, event)


@functools.cache
def lifecycle() -> LifecycleMachine:
    """The process-wide shared machine."""
    return LifecycleMachine()
