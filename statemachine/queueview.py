"""The queue as the API sees it: positions, the next actionable candidate, and a run's summary.

``mergegate list`` numbers the queue and ``mergegate run`` drains it; these are
the same facts for a Python caller. The order is the one ``Engine.start_next``
claims in (the store's ``claim_next``): the candidate holding the lease first,
then the queued ones (``pending`` and ``retry``) as they will be taken,
numbered from 1, then the others that are still active (held out of the
queue by a block), then the finished ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import attrs

from ._driving import finish_apply
from .applier import Applier
from .engine import Engine
from .errors import LeaseHeld
from .records import Candidate, Outcome
from .states import State
from .store import Store
from .table import TABLE, Table
from .waiting import next_waiting

__all__ = ["QueueEntry", "RunSummary", "next_actionable", "queue", "run_queue"]


@attrs.frozen
class QueueEntry:
    """One candidate in queue order; ``position`` counts from 1, ``None`` off the queue."""

    candidate: Candidate
    position: int | None


def _group(candidate: Candidate, table: Table) -> int:
    state = candidate.state
    if state in table.leased:
        return 0
    if state in table.queued:
        return 1
    return 2 if state in table.active else 3


def rank(
    candidates: Iterable[Candidate],
    order: Sequence[Candidate],
    *,
    states: Iterable[State] | None = None,
    table: Table = TABLE,
) -> list[QueueEntry]:
    """``candidates`` in queue order with their positions, kept to ``states`` if given.

    ``order`` is the store's queue (``Store.queue()``): the queued candidates
    take its stored order; the others go applying first, then the rest by id.
    Positions count every queued candidate before the filter, so a candidate
    has the same position whatever is asked.
    """
    place = {c.id: n for n, c in enumerate(order)}

    def key(c: Candidate) -> tuple[object, ...]:
        group = _group(c, table)
        return (group, place.get(c.id, len(place)), c.id) if group == 1 else (group, c.id)

    ranked = sorted(candidates, key=key)
    numbers = {c.id: n for n, c in enumerate((c for c in ranked if c.state in table.queued), 1)}
    wanted = None if states is None else frozenset(states)
    return [QueueEntry(c, numbers.get(c.id)) for c in ranked if wanted is None or c.state in wanted]


def queue(
    store: Store, *, states: Iterable[State] | None = None, table: Table = TABLE
) -> list[QueueEntry]:
    """Every candidate in queue order with its position, kept to ``states`` if given.

    Positions count every queued candidate before the filter, so a candidate
    has the same position whatever is asked. Only the active candidates are
    read (through their index) unless ``states`` asks for a finished one.
    Raises StoreError on a store failure.
    """
    wanted = None if states is None else frozenset(states)
    active_only = wanted is not None and wanted <= table.active
    candidates = store.active_candidates() if active_only else store.candidates()
    return rank(candidates, store.queue(), states=wanted, table=table)


def next_actionable(store: Store) -> Candidate | None:
    """The candidate ``Engine.start_next`` would take now (position 1), or ``None``.

    A read: another integrator may claim it first; ``start_next`` claims and
    starts in one transaction.
    """
    return store.next_candidate()


@attrs.frozen
class RunSummary:
    """What one run of the queue did: counts, every settled outcome, and how long it took.

    ``recovered`` counts the applies of dead integrators the run settled;
    ``released`` the candidates it gave back when stopped (the CLI's run);
    ``busy`` the seconds spent handling candidates, idle waits left out (what
    a rate divides by: an integrator idle all night has not become slow).
    """

    handled: int = 0
    integrated: int = 0
    blocked: int = 0
    recovered: int = 0
    released: int = 0
    seconds: float = 0.0
    busy: float = 0.0
    outcomes: tuple[Outcome, ...] = ()

    def counted(self, outcome: Outcome, *, keep: bool = True) -> RunSummary:
        """This summary with ``outcome`` (one settled apply) added.

        ``keep=False`` counts it without keeping it: a run that lives all day
        (the CLI's ``run``) must not grow with every candidate it handles.
        """
        state = outcome.candidate.state
        return attrs.evolve(
            self,
            handled=self.handled + 1,
            integrated=self.integrated + (state is State.INTEGRATED),
            blocked=self.blocked + (state is State.BLOCKED),
            outcomes=(*self.outcomes, outcome) if keep else self.outcomes,
        )

    @property
    def per_busy_minute(self) -> float:
        """Candidates handled per minute of busy time (0 before the first)."""
        return self.handled / self.busy * 60 if self.busy > 0 else 0.0


def run_queue(
    engine: Engine,
    applier: Applier,
    *,
    owner: str,
    idle_timeout: float = 0.0,
    stop: Callable[[], bool] | None = None,
) -> RunSummary:
    """Apply queued candidates one after another until the queue stays empty.

    Between applies it claims the next one as :func:`~.waiting.start_next_waiting`
    does, with ``applier``: it waits on the change feed, up to ``idle_timeout``
    seconds each time, for work when the queue is empty and for the lease when
    another integrator holds it, and takes over an expired lease at once
    (recovered as ``Engine.recover`` recovers it, its moves logged, counted in
    ``recovered``). It returns when the queue stayed empty, or the lease stayed
    held, for ``idle_timeout`` (``0``: return at once, even with candidates
    queued behind a live lease), or when ``stop()`` says so (checked between
    applies).
    """
    began = time.monotonic()
    summary = RunSummary()
    while stop is None or not stop():
        settled: list[Outcome] = []
        try:
            started = next_waiting(
                engine, owner=owner, timeout=idle_timeout, applier=applier, settled=settled
            )
        except LeaseHeld:
            # A live holder kept it for the whole idle_timeout: another integrator is at work.
            started = None
        summary = attrs.evolve(summary, recovered=summary.recovered + len(settled))
        if started is None:
            break
        since = time.monotonic()
        outcome = finish_apply(engine, started, applier, owner)
        summary = attrs.evolve(
            summary.counted(outcome), busy=summary.busy + time.monotonic() - since
        )
    return attrs.evolve(summary, seconds=time.monotonic() - began)
