"""A move the store may carry out in one piece: the Engine's fast path.

Most calls are the happy path of a common move: the candidate is where the
caller thinks, the lease is free, and the rule's effects are the simple ones.
For those, the Engine hands the store a :class:`Move` (the request, with the
table's rules for its event spelled out per source state) and the store does
the read, the checks and the writes in one transaction: on PostgreSQL one
server-side function call, one round trip; on SQLite one short Python path.

The store only ever *accepts* a move. Whenever anything is not exactly the
happy case (no such candidate, a stale ``expected_seq``, an illegal event, a
held lease, a duplicate submit) it declines, writes nothing, and the Engine
fires the request through its general path, which alone decides what went
wrong and raises. So the checks that end in an error are written once, and
the fast path cannot disagree with them: it can only decline more often.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from .records import Candidate, CandidateKey, Transition
from .states import Event, State
from .table import Effect, Rule, Table
from .validation import attrs_validator, check_slug, check_text

__all__ = ["Move", "Moved", "Step", "steps_for"]


@attrs.frozen
class Step:
    """What one rule of an event does from ``source``, as plain facts a store can act on.

    ``source`` is ``None`` for the creating event.
    """

    source: State | None
    dest: State
    #: The candidate's flags after the move (see ``Table.active`` and ``Table.queued``).
    active: bool
    queued: bool
    take_lease: bool = False
    release_lease: bool = False
    #: Mark the blocked outcome resumed (a drop, or a close the caller may make unasked).
    close_blocked: bool = False


#: Effects a store's fast path carries out. A rule that records a block goes
#: through the general path. SUPERSEDE_SHA only *allows* a new sha: the Engine
#: offers the fast path only calls that give none, so the sha stays as it is.
_FAST_EFFECTS = frozenset(
    {
        Effect.TAKE_LEASE,
        Effect.RELEASE_LEASE,
        Effect.DROP_BLOCKED,
        Effect.CLOSE_BLOCKED,
        Effect.RELEASE_IDENTITY,
        Effect.SUPERSEDE_SHA,
    }
)


def steps_for(table: Table, event: Event, *, may_close: bool) -> tuple[Step, ...]:
    """The fast-path steps of ``event``: one per source state whose rule qualifies.

    A rule qualifies when its effects are all simple and it does not enter a
    state that carries a blocked outcome (the outcome would have to report the
    blocked record). ``may_close`` says whether a ``CLOSE_BLOCKED`` rule may run
    unasked: not when a resolver must first judge the follow-up.
    """
    steps = []
    for rule in table.rules:
        if rule.event is not event or not _qualifies(rule, may_close):
            continue
        for source, dest in rule.edges():
            if dest in table.carrying_blocked:
                continue
            steps.append(
                Step(
                    source,
                    dest,
                    active=dest in table.active,
                    queued=dest in table.queued,
                    take_lease=Effect.TAKE_LEASE in rule.effects,
                    release_lease=Effect.RELEASE_LEASE in rule.effects,
                    close_blocked=bool({Effect.CLOSE_BLOCKED, Effect.DROP_BLOCKED} & rule.effects),
                )
            )
    return tuple(steps)


def _qualifies(rule: Rule, may_close: bool) -> bool:
    if not rule.effects <= _FAST_EFFECTS:
        return False
    return may_close or Effect.CLOSE_BLOCKED not in rule.effects


@attrs.frozen
class Move:
    """One request for the fast path: what to do from each source state, and the entry's facts.

    ``key`` is set for the creating event only. ``owner`` and ``expires_at``
    describe the lease a ``take_lease`` step takes.
    """

    # Checked here, before any store sees them: the entry built after the
    # commit (:meth:`moved`) must not be the first to find them invalid.
    event: Event
    slug: str = attrs.field(validator=attrs_validator(check_slug))
    steps: tuple[Step, ...]
    at: datetime
    actor: str = attrs.field(validator=attrs_validator(check_text))
    lease_name: str
    key: CandidateKey | None = None
    expected_seq: int | None = None
    note: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs_validator(check_text))
    )
    owner: str | None = None
    expires_at: datetime | None = None

    def step(self, source: State | None) -> Step | None:
        """The step from ``source``, or ``None``: the store must then decline."""
        for step in self.steps:
            if step.source is source:
                return step
        return None

    def entry(self, before: Candidate, step: Step) -> Transition:
        """The log entry of ``step``, from the candidate as it was read."""
        return Transition(
            candidate_id=before.id,
            seq=before.seq + 1,
            event=self.event,
            source=before.state if before.seq else None,
            dest=step.dest,
            sha=before.key.sha,
            actor=self.actor,
            at=self.at,
            reason=self.note,
        )

    def moved(self, before: Candidate, step: Step) -> Moved:
        """The candidate after ``step`` and its log entry."""
        entry = self.entry(before, step)
        after = Candidate(before.id, before.key, step.dest, entry.seq, before.submitted_at, self.at)
        return Moved(after, entry)


@attrs.frozen
class Moved:
    """What a store that accepted a :class:`Move` committed."""

    candidate: Candidate
    entry: Transition
