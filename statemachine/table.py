"""The lifecycle, declared once as data.

Everything else (the ``transitions`` machine, the docs diagram, ``verify``) is
derived from :data:`TABLE`, so the table is the single place a move can be added.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import attrs

from .states import Event, State

__all__ = ["TABLE", "Rule", "Table"]


@attrs.frozen
class Rule:
    """``event`` moves a candidate from any of ``sources`` to ``dest``.

    ``dest is None`` marks an internal transition: the event is logged, the
    state does not change. ``sources == ()`` marks the creating event.
    """

    event: Event
    sources: tuple[State, ...]
    dest: State | None
    meaning: str

    def edges(self) -> Iterator[tuple[State | None, State]]:
        """Yield ``(source, destination)`` pairs, ``source`` ``None`` for creation."""
        if not self.sources:
            assert self.dest is not None
            yield None, self.dest
        for source in self.sources:
            yield source, self.dest if self.dest is not None else source


@attrs.frozen
class Table:
    """An immutable, checked event table with O(1) lookup."""

    rules: tuple[Rule, ...]
    _moves: dict[tuple[State | None, Event], State] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        moves: dict[tuple[State | None, Event], State] = {}
        for rule in self.rules:
            if rule.dest is None and not rule.sources:
                raise ValueError(f"rule {rule.event} is internal but has no source state")
            for source, dest in rule.edges():
                if (source, rule.event) in moves:
                    # Rejected at build time, as Automat does: an ambiguous table
                    # would otherwise pick a destination by declaration order.
                    raise ValueError(f"duplicate transition: {rule.event} from {source}")
                moves[(source, rule.event)] = dest
        for state in State:
            if not state.is_terminal and not any(
                s == state and d != state for (s, _), d in moves.items()
            ):
                raise ValueError(f"state {state} has no way out; only integrated may be terminal")
        object.__setattr__(self, "_moves", moves)

    def destination(self, source: State | None, event: Event) -> State | None:
        """Return where ``event`` leads from ``source``, or ``None`` if the table forbids it."""
        return self._moves.get((source, event))

    def edges(self) -> Iterable[tuple[State | None, Event, State]]:
        """Every allowed ``(source, event, destination)``, in declaration order."""
        for rule in self.rules:
            for source, dest in rule.edges():
                yield source, rule.event, dest

    def events_from(self, source: State) -> tuple[Event, ...]:
        """The events allowed in ``source``, in declaration order."""
        return tuple(e for s, e, _ in self.edges() if s == source)

    # -- state sets, derived from the rules so that no other module restates them --

    @property
    def terminal(self) -> frozenset[State]:
        """States with no move to another state: a candidate there is finished."""
        leaving = {s for s, _, d in self.edges() if s is not None and d != s}
        return frozenset(State) - leaving

    @property
    def active(self) -> frozenset[State]:
        """States that still hold their slug (every state that is not terminal)."""
        return frozenset(State) - self.terminal

    @property
    def queued(self) -> frozenset[State]:
        """States from which an integrator may take the candidate (``start_apply``)."""
        return frozenset(s for s, e, _ in self.edges() if e is Event.START_APPLY and s)

    @property
    def carrying_blocked(self) -> frozenset[State]:
        """States that carry an open blocked outcome: entered by a block, left by resume."""
        found = {d for _, e, d in self.edges() if e in (Event.BLOCK, Event.INTERRUPT)}
        terminal = self.terminal
        frontier = set(found)
        while frontier:
            state = frontier.pop()
            for s, e, d in self.edges():
                if s == state and e is not Event.RESUME and d not in found | terminal:
                    found.add(d)
                    frontier.add(d)
        return frozenset(found)


TABLE = Table(
    (
        Rule(Event.SUBMIT, (), State.PENDING, "a candidate (slug, branch, sha) is ready"),
        Rule(
            Event.START_APPLY,
            (State.PENDING, State.RETRY),
            State.APPLYING,
            "the integrator took the lease and begins the apply",
        ),
        Rule(
            Event.INTEGRATE,
            (State.APPLYING,),
            State.INTEGRATED,
            "main was advanced by compare-and-swap to a commit containing the candidate",
        ),
        Rule(Event.BLOCK, (State.APPLYING,), State.BLOCKED, "the apply failed"),
        Rule(
            Event.BLOCK,
            (State.BLOCKED, State.REMEDIATING),
            None,
            "the same blocked detection again: evidence is appended",
        ),
        Rule(
            Event.INTERRUPT,
            (State.APPLYING,),
            State.BLOCKED,
            "the apply's lease expired: reason apply_interrupted",
        ),
        Rule(
            Event.START_REMEDIATION,
            (State.BLOCKED,),
            State.REMEDIATING,
            "someone works on the follow-up",
        ),
        Rule(
            Event.RESUME,
            (State.REMEDIATING,),
            State.RETRY,
            "the follow-up is resolved (or forced with a reason)",
        ),
    )
)
