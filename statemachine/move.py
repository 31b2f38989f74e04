"""A move the store may carry out in one piece: the Engine's offer to a store's fast path.

Most calls are the happy path of a common move: the candidate is where the
caller thinks, the lease is free, and the step's flags are simple ones. For
those, the Engine hands a store that offers ``move`` (a :class:`~.store.Mover`)
a :class:`Move`: the request, with the table's compiled steps of its event
(:meth:`~.table.Table.steps`), and the store does the read, the checks and the
writes in one piece. PostgreSQL does (one server-side call, one round trip);
SQLite does not need to: its transaction has no round trips to save, so its
moves all take the Engine's one path.

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

from ._validation import attrs_validator, check_slug, check_text
from .records import Candidate, CandidateKey, Transition
from .states import Event, State
from .table import Step

__all__ = ["Move", "Moved", "log_entry"]


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
    #: The main commit an ``integrate`` names (logged in the entry's own field).
    main_sha: str | None = None
    #: Why an apply was cut short, on the requeue that settles it.
    interrupted: str | None = None

    def step(self, source: State | None) -> Step | None:
        """The step from ``source``, or ``None``: the store must then decline."""
        for step in self.steps:
            if step.source is source:
                return step
        return None

    def entry(self, before: Candidate, step: Step) -> Transition:
        """The log entry of ``step``, from the candidate as it was read."""
        return log_entry(
            before,
            step,
            self.actor,
            self.at,
            self.note,
            owner=self.owner,
            main_sha=self.main_sha,
            interrupted=self.interrupted,
        )

    def moved(self, before: Candidate, step: Step) -> Moved:
        """The candidate after ``step`` and its log entry."""
        entry = self.entry(before, step)
        after = Candidate(before.id, before.key, step.dest, entry.seq, before.submitted_at, self.at)
        return Moved(after, entry)


def log_entry(
    before: Candidate,
    step: Step,
    actor: str,
    at: datetime,
    note: str | None,
    *,
    sha: str | None = None,
    owner: str | None = None,
    main_sha: str | None = None,
    interrupted: str | None = None,
    idempotency_key: str | None = None,
    request_digest: str | None = None,
) -> Transition:
    """The entry ``step`` logs for ``before``: the facts in their own fields, the note for people.

    The one place an entry is made, for the Engine's path and a store's fast path alike.
    """
    return Transition(
        candidate_id=before.id,
        seq=before.seq + 1,
        event=step.event,
        source=before.state if before.seq else None,
        dest=step.dest,
        sha=sha or before.key.sha,
        actor=actor,
        at=at,
        reason=note,
        idempotency_key=idempotency_key,
        request_digest=request_digest,
        lease_owner=owner if step.take_lease else None,
        main_sha=main_sha,
        interrupted=interrupted,
    )


@attrs.frozen
class Moved:
    """What a store that accepted a :class:`Move` committed."""

    candidate: Candidate
    entry: Transition
