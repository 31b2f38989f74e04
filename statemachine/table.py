"""The lifecycle, declared once as data: every move, with its destination and its effects.

Everything else (the ``transitions`` machine, the Engine's one fire path, the
docs diagram, ``verify``, the state sets the stores use) is derived from
:data:`TABLE`, so the table is the single place a move, or a state, is added.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator

import attrs

from .errors import TableError
from .states import Event, State

__all__ = [
    "CLOSING_EFFECTS",
    "STEP_FLAG",
    "STEP_FLAGS",
    "TABLE",
    "Effect",
    "Rule",
    "Step",
    "Table",
    "TableError",
]


class Effect(enum.StrEnum):
    """What a move does besides appending its log entry, inside the same transaction."""

    #: Take the integration lease for the caller (refused with LeaseHeld if it is held),
    #: or join it when the caller holds it, live, as a chain lease (one naming no candidate):
    #: that is how several candidates are ``applying`` at once under one integrator.
    TAKE_LEASE = "take_lease"
    #: Release the integration lease the candidate holds; a chain lease is left to its holder.
    RELEASE_LEASE = "release_lease"
    #: Upsert the blocked outcome and append the report as one evidence occurrence.
    RECORD_BLOCK = "record_block"
    #: Enqueue the follow-up in the outbox. The store does it inside ``record_block``,
    #: which is why the build insists that the two always come together.
    ENQUEUE_FOLLOW_UP = "enqueue_follow_up"
    #: Mark the blocked outcome resumed; refused until its follow-up is resolved (or forced).
    CLOSE_BLOCKED = "close_blocked"
    #: The call may give the candidate a new sha (a fix committed during remediation).
    SUPERSEDE_SHA = "supersede_sha"
    #: Close the blocked outcome without asking whether its follow-up is resolved:
    #: the candidate is given up, so there is nothing left to resume.
    DROP_BLOCKED = "drop_blocked"
    #: The candidate's identity is free again: submitting it later queues a new
    #: candidate, where a repeat of an integrated identity is a no-op.
    RELEASE_IDENTITY = "release_identity"


#: Effects that end a blocked outcome: a state entered by a block carries it until one.
CLOSING_EFFECTS = frozenset({Effect.CLOSE_BLOCKED, Effect.DROP_BLOCKED})


#: Effects that need something from the caller; every rule of one event must agree
#: on them, so that one named call (``block``, ``start_apply``...) serves every source.
PAYLOAD_EFFECTS = frozenset({Effect.TAKE_LEASE, Effect.RECORD_BLOCK, Effect.SUPERSEDE_SHA})


def _effects(effects: Iterable[Effect]) -> frozenset[Effect]:
    return frozenset(Effect(e) for e in effects)


@attrs.frozen
class Rule:
    """``event`` moves a candidate from any of ``sources`` to ``dest``, with ``effects``.

    ``dest is None`` marks an internal transition: the event is logged, the
    state does not change. ``sources == ()`` marks the creating event.
    """

    event: Event
    sources: tuple[State, ...]
    dest: State | None
    meaning: str
    effects: frozenset[Effect] = attrs.field(default=frozenset(), converter=_effects)

    def edges(self) -> Iterator[tuple[State | None, State]]:
        """Yield ``(source, destination)`` pairs, ``source`` ``None`` for creation."""
        if not self.sources:
            assert self.dest is not None
            yield None, self.dest
        for source in self.sources:
            yield source, self.dest if self.dest is not None else source


@attrs.frozen
class Step:
    """One ``(event, source)`` of the table, compiled to the facts a store acts on.

    Every effect of the rule is a flag here (:data:`STEP_FLAG` says which), so
    whoever carries out a move reads flags and never interprets an effect
    again. ``source`` is ``None`` for the creating event; ``dest`` is the state
    after the move (the source itself for an internal move).
    """

    event: Event
    source: State | None
    dest: State
    #: The candidate's flags after the move (:attr:`Table.active`, :attr:`Table.queued`),
    #: and whether the move changes them (a store then writes them, and their index).
    active: bool
    queued: bool
    active_changes: bool = True
    queued_changes: bool = True
    #: The destination carries a blocked outcome: the move's outcome reports it.
    carries_blocked: bool = False
    take_lease: bool = False
    release_lease: bool = False
    #: Upsert the blocked outcome, append the evidence and enqueue the follow-up.
    record_block: bool = False
    #: Close the blocked outcome once its follow-up is found resolved (or forced).
    close_blocked: bool = False
    #: Close the blocked outcome without asking: the candidate is given up.
    drop_blocked: bool = False
    #: The call may give the candidate a new sha.
    supersede_sha: bool = False
    #: The destination frees the identity: a later submit of it queues anew.
    releases_identity: bool = False
    #: The candidate re-enters the queue after a block: it goes to the back.
    reenters: bool = False


#: Which :class:`Step` flag carries each effect. Checked when this module is
#: imported: an effect added to :class:`Effect` without a flag here is an error
#: at start-up, not a move some store silently fails to make.
STEP_FLAG: dict[Effect, str] = {
    Effect.TAKE_LEASE: "take_lease",
    Effect.RELEASE_LEASE: "release_lease",
    Effect.RECORD_BLOCK: "record_block",
    # The store enqueues inside record_block: the build insists they come together.
    Effect.ENQUEUE_FOLLOW_UP: "record_block",
    Effect.CLOSE_BLOCKED: "close_blocked",
    Effect.DROP_BLOCKED: "drop_blocked",
    Effect.SUPERSEDE_SHA: "supersede_sha",
    Effect.RELEASE_IDENTITY: "releases_identity",
}
#: The flags of a :class:`Step` that say what it does besides moving the state:
#: a store's fast path must name each as carried out or declined (persistence/postgres.py).
STEP_FLAGS = frozenset(
    f.name
    for f in attrs.fields(Step)
    if f.type in (bool, "bool") and f.name not in {"active", "queued"}
)
if set(STEP_FLAG) != set(Effect) or not set(STEP_FLAG.values()) <= STEP_FLAGS:
    raise TableError(
        "every Effect needs its Step flag in STEP_FLAG: missing "
        + ", ".join(sorted(e.value for e in set(Effect) - set(STEP_FLAG)))
        + "; not a Step flag: "
        + ", ".join(sorted(set(STEP_FLAG.values()) - STEP_FLAGS))
    )


def _closure(
    entered: set[State], rules: tuple[Rule, ...], stop: frozenset[Effect]
) -> frozenset[State]:
    """``entered``, plus every state reached from it by a move with none of the ``stop`` effects."""
    found = set(entered)
    frontier = list(entered)
    while frontier:
        state = frontier.pop()
        for rule in rules:
            if state in rule.sources and not (stop & rule.effects):
                for source, dest in rule.edges():
                    if source == state and dest not in found:
                        found.add(dest)
                        frontier.append(dest)
    return frozenset(found)


def _declared(state: State) -> int:
    """Where ``state`` is declared in its enum: diagrams list states in that order."""
    members: list[State] = list(type(state))
    return members.index(state)


@attrs.frozen
class Table:
    """An immutable event table with O(1) lookup, checked when it is built.

    The states are the ones the rules name, in order of first appearance, so a
    table built from an extended rule set (a new state) needs nothing else.
    """

    rules: tuple[Rule, ...]
    _moves: dict[tuple[State | None, Event], Rule] = attrs.field(init=False, repr=False)
    _steps: dict[tuple[State | None, Event], Step] = attrs.field(init=False, repr=False)
    _by_event: dict[Event, tuple[Step, ...]] = attrs.field(init=False, repr=False)
    states: tuple[State, ...] = attrs.field(init=False)
    terminal: frozenset[State] = attrs.field(init=False)
    """States with no move to another state: a candidate there is finished."""
    active: frozenset[State] = attrs.field(init=False)
    """States that still hold their slug (every state that is not terminal)."""
    queued: frozenset[State] = attrs.field(init=False)
    """States from which an integrator may take the candidate: the lease-taking moves' sources."""
    leased: frozenset[State] = attrs.field(init=False)
    """States in which the candidate holds the integration lease."""
    carrying_blocked: frozenset[State] = attrs.field(init=False)
    """States that carry an open blocked outcome: entered by a block, left by closing it."""
    released: frozenset[State] = attrs.field(init=False)
    """Terminal states whose identity a new submit may take again (a withdrawn candidate)."""

    def __attrs_post_init__(self) -> None:
        moves: dict[tuple[State | None, Event], Rule] = {}
        states: dict[State, None] = {}
        for rule in self.rules:
            if rule.dest is None and not rule.sources:
                raise TableError(f"rule {rule.event} is internal but has no source state")
            for source, dest in rule.edges():
                if (source, rule.event) in moves:
                    # Rejected at build time, as Automat does: an ambiguous table
                    # would otherwise pick a destination by declaration order.
                    raise TableError(f"duplicate transition: {rule.event} from {source}")
                moves[(source, rule.event)] = rule
                states.update(dict.fromkeys(s for s in (source, dest) if s is not None))
        rules = self.rules
        leaving = {s for r in rules for s, d in r.edges() if s is not None and d != s}
        terminal = frozenset(states) - leaving
        taking = {s for r in rules if Effect.TAKE_LEASE in r.effects for s, _ in r.edges()}
        leased = _closure(
            {d for r in rules if Effect.TAKE_LEASE in r.effects for _, d in r.edges()},
            rules,
            frozenset({Effect.RELEASE_LEASE}),
        )
        carrying = _closure(
            {d for r in rules if Effect.RECORD_BLOCK in r.effects for _, d in r.edges()},
            rules,
            CLOSING_EFFECTS,
        )
        set_ = object.__setattr__
        set_(self, "_moves", moves)
        # Declaration order of the states' enum, whatever order the rules name them in.
        set_(self, "states", tuple(sorted(states, key=_declared)))
        set_(self, "terminal", terminal)
        set_(self, "active", frozenset(states) - terminal)
        set_(self, "queued", frozenset(s for s in taking if s is not None))
        set_(self, "leased", leased)
        set_(self, "carrying_blocked", carrying)
        set_(
            self,
            "released",
            frozenset(
                d for r in rules if Effect.RELEASE_IDENTITY in r.effects for _, d in r.edges()
            ),
        )
        for problem in self._problems():
            raise TableError(problem)
        steps = {(s, e): self._compile(s, e) for s, e, _ in self.edges()}
        set_(self, "_steps", steps)
        by_event: dict[Event, list[Step]] = {}
        for step in steps.values():
            by_event.setdefault(step.event, []).append(step)
        set_(self, "_by_event", {e: tuple(found) for e, found in by_event.items()})

    def _compile(self, source: State | None, event: Event) -> Step:
        rule = self._moves[(source, event)]
        dest = rule.dest if rule.dest is not None else source
        assert dest is not None  # a creating rule names its destination
        flags = {STEP_FLAG[effect]: True for effect in rule.effects}
        return Step(
            event,
            source,
            dest,
            active=dest in self.active,
            queued=dest in self.queued,
            active_changes=source is None or (source in self.active) != (dest in self.active),
            queued_changes=source is None or (source in self.queued) != (dest in self.queued),
            carries_blocked=dest in self.carrying_blocked,
            # A resume after a block re-enters the queue: to its back, as a
            # re-approved change goes in bors or Zuul. A requeue (the integrator's
            # fault, not the candidate's) keeps its place.
            reenters=bool(CLOSING_EFFECTS & rule.effects) and dest in self.queued,
            **flags,
        )

    def _problems(self) -> Iterator[str]:
        """Every way the rules contradict their effects, first found first."""
        creating = [r for r in self.rules if not r.sources]
        if len(creating) != 1:
            yield f"a lifecycle needs exactly one creating rule, found {len(creating)}"
        for rule in creating:
            if rule.effects:
                yield f"creating rule {rule.event} cannot have effects"
        by_event: dict[Event, frozenset[Effect]] = {}
        for rule in self.rules:
            wants = rule.effects & PAYLOAD_EFFECTS
            if by_event.setdefault(rule.event, wants) != wants:
                yield f"rules of {rule.event} disagree on what the call must carry"
            if (Effect.RECORD_BLOCK in rule.effects) != (Effect.ENQUEUE_FOLLOW_UP in rule.effects):
                yield f"{rule.event}: record_block and enqueue_follow_up go together"
            for source, dest in rule.edges():
                yield from self._edge_problems(rule, source, dest)
        for state in sorted(self.released - self.terminal):
            yield f"state {state} releases its identity, so it must be terminal"
        for state in sorted(self.terminal & (self.leased | self.carrying_blocked)):
            yield f"state {state} has no way out, yet it would keep a lease or a blocked outcome"
        reached = (
            _closure({self.initial}, self.rules, stop=frozenset()) if creating else frozenset()
        )
        for state in self.states:
            if state not in reached:
                yield f"state {state} cannot be reached from {self.initial}"

    def _edge_problems(self, rule: Rule, source: State | None, dest: State) -> Iterator[str]:
        move = f"{rule.event} from {source} to {dest}"
        held, holds = source in self.leased, dest in self.leased
        if Effect.TAKE_LEASE in rule.effects and held:
            yield f"{move} takes the lease it already holds"
        if Effect.RELEASE_LEASE in rule.effects and not held:
            yield f"{move} releases a lease it does not hold"
        if held and not holds and Effect.RELEASE_LEASE not in rule.effects:
            yield f"{move} leaves a leased state, so it must release the lease"
        if holds and not held and Effect.TAKE_LEASE not in rule.effects:
            yield f"{move} enters a leased state, so it must take the lease"
        carried, carries = source in self.carrying_blocked, dest in self.carrying_blocked
        if carries and not carried and Effect.RECORD_BLOCK not in rule.effects:
            yield f"{move} enters a blocked-carrying state, so it must record a block"
        if CLOSING_EFFECTS & rule.effects and not carried:
            yield f"{move} closes a blocked outcome it does not carry"
        if len(CLOSING_EFFECTS & rule.effects) > 1:
            yield f"{move} both closes and drops its blocked outcome"

    def step(self, source: State | None, event: Event) -> Step | None:
        """The compiled move of ``event`` from ``source``, or ``None`` if the table forbids it."""
        return self._steps.get((source, event))

    def steps(self, event: Event) -> tuple[Step, ...]:
        """Every compiled move of ``event``, one per source state, in declaration order."""
        return self._by_event.get(event, ())

    def rule(self, source: State | None, event: Event) -> Rule | None:
        """The rule that lets ``event`` move a candidate in ``source``, or ``None``."""
        return self._moves.get((source, event))

    def destination(self, source: State | None, event: Event) -> State | None:
        """Return where ``event`` leads from ``source``, or ``None`` if the table forbids it."""
        rule = self._moves.get((source, event))
        if rule is None:
            return None
        return rule.dest if rule.dest is not None else source

    def is_internal(self, source: State | None, event: Event) -> bool:
        """True when ``event`` is allowed from ``source`` and leaves the state unchanged."""
        rule = self._moves.get((source, event))
        return rule is not None and rule.dest is None

    @property
    def initial(self) -> State:
        """The state the creating rule puts a new candidate in."""
        return next(d for r in self.rules if not r.sources for _, d in r.edges())

    def edges(self) -> Iterable[tuple[State | None, Event, State]]:
        """Every allowed ``(source, event, destination)``, in declaration order."""
        for rule in self.rules:
            for source, dest in rule.edges():
                yield source, rule.event, dest

    def events_from(self, source: State) -> tuple[Event, ...]:
        """The events allowed in ``source``, in declaration order."""
        return tuple(e for s, e, _ in self.edges() if s == source)


_BLOCKS = (Effect.RECORD_BLOCK, Effect.ENQUEUE_FOLLOW_UP)

TABLE = Table(
    (
        Rule(Event.SUBMIT, (), State.PENDING, "a candidate (slug, branch, sha) is ready"),
        Rule(
            Event.START_APPLY,
            (State.PENDING, State.RETRY),
            State.APPLYING,
            "the integrator took the lease and begins the apply",
            {Effect.TAKE_LEASE},
        ),
        Rule(
            Event.INTEGRATE,
            (State.APPLYING,),
            State.INTEGRATED,
            "main was advanced by compare-and-swap to a commit containing the candidate",
            {Effect.RELEASE_LEASE},
        ),
        Rule(
            Event.BLOCK,
            (State.APPLYING,),
            State.BLOCKED,
            "the apply failed",
            {*_BLOCKS, Effect.RELEASE_LEASE},
        ),
        Rule(
            Event.BLOCK,
            (State.BLOCKED, State.REMEDIATING),
            None,
            "the same blocked detection again: evidence is appended",
            _BLOCKS,
        ),
        Rule(
            Event.INTERRUPT,
            (State.APPLYING,),
            State.BLOCKED,
            "the apply's lease expired: reason apply_interrupted",
            {*_BLOCKS, Effect.RELEASE_LEASE},
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
            {Effect.CLOSE_BLOCKED, Effect.SUPERSEDE_SHA},
        ),
        Rule(
            Event.SUPERSEDE,
            (State.PENDING, State.RETRY),
            None,
            "submitted again at a new sha (a force-pushed branch): the old sha is replaced",
            {Effect.SUPERSEDE_SHA},
        ),
        Rule(
            Event.WITHDRAW,
            (State.PENDING, State.RETRY),
            State.WITHDRAWN,
            "taken out of the queue, with a reason; the slug is free again",
            {Effect.RELEASE_IDENTITY},
        ),
        Rule(
            Event.WITHDRAW,
            (State.BLOCKED, State.REMEDIATING),
            State.WITHDRAWN,
            "taken out while blocked: the blocked outcome is closed, the follow-up withdrawn",
            {Effect.DROP_BLOCKED, Effect.RELEASE_IDENTITY},
        ),
        Rule(
            Event.REQUEUE,
            (State.APPLYING,),
            State.PENDING,
            "a speculative link was thrown away (its base was invalidated by another "
            "candidate, main moved, or its chain was interrupted): back to the queue",
            {Effect.RELEASE_LEASE},
        ),
    )
)
