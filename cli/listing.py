"""The order ``list`` shows candidates in: the queue as ``apply`` will take it.

A pure function of the candidates and the table's state sets, so that one store
always lists in one order: the candidate holding the lease first, then the
queued ones in the order ``claim_next`` takes them (oldest last move first,
then id), numbered from 1, then the other active ones (held out of the queue
by a block), then the finished ones, each group oldest submission first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mergegate.statemachine import TABLE, Candidate, State, Table

__all__ = ["Listed", "queue_listing"]

#: One row of the listing: the candidate and its queue position (``None`` off the queue).
Listed = tuple[Candidate, int | None]


def _group(candidate: Candidate, table: Table) -> int:
    state = candidate.state
    if state in table.leased:
        return 0
    if state in table.queued:
        return 1
    if state in table.active:
        return 2
    return 3


def queue_listing(
    candidates: Iterable[Candidate],
    *,
    states: Sequence[State] | None = None,
    table: Table = TABLE,
) -> list[Listed]:
    """The candidates in queue order with their positions, kept to ``states`` if given.

    Positions are counted over every queued candidate before filtering, so a
    candidate shows the same position whatever the filter.
    """

    def order(c: Candidate) -> tuple[object, ...]:
        group = _group(c, table)
        if group == 1:
            return (group, c.updated_at, c.id)
        return (group, c.id)

    ranked = sorted(candidates, key=order)
    queued = [c for c in ranked if c.state in table.queued]
    position = {c.id: n for n, c in enumerate(queued, start=1)}
    wanted = None if states is None else frozenset(states)
    return [(c, position.get(c.id)) for c in ranked if wanted is None or c.state in wanted]
