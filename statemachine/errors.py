"""mergegate's exceptions: one root, and subclasses that carry their facts.

Each subclass also inherits the builtin a caller would naturally catch, so
``except ValueError`` still works for bad input. Messages are one line: what was
wrong, the offending value, and what to do instead.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from .states import Event, State


class NamedCandidate(Protocol):
    """What an error names of a candidate: its identity. ``records.CandidateKey`` is one.

    Spelled as a protocol because ``records`` imports this module (its validators
    raise InvalidInput): the facts stay typed without an import back.
    """

    @property
    def slug(self) -> str: ...
    @property
    def branch(self) -> str: ...
    @property
    def sha(self) -> str: ...


__all__ = [
    "CandidateNotFound",
    "ConcurrencyConflict",
    "ControlRefused",
    "DuplicateCandidate",
    "FollowUpNotResolved",
    "IdempotencyKeyReused",
    "IllegalTransition",
    "InvalidInput",
    "LeaseHeld",
    "MergegateError",
    "MoveInFlight",
    "QueueDraining",
    "QueuePaused",
    "RepositoryError",
    "StoreError",
    "TableError",
]


class MergegateError(Exception):
    """The root of every error mergegate raises on purpose."""

    def __init__(self, message: str, **facts: Any) -> None:
        # One line always: a newline in a message could forge a log line.
        super().__init__(" ".join(message.split("\n")))
        for name, value in facts.items():
            setattr(self, name, value)


class InvalidInput(MergegateError, ValueError):
    """A value failed validation; nothing was written."""

    field: str
    value: object

    def __init__(self, field: str, value: object, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        super().__init__(f"invalid {field} {shown}: {expected}", field=field, value=value)


class IdempotencyKeyReused(InvalidInput):
    """An idempotency key came back with a different request; nothing was written.

    As with Stripe's API, a key names one request: its repeat returns what the
    first call did, and another request under the same key is an error rather
    than a silently dropped payload.
    """

    candidate: NamedCandidate
    event: Event

    def __init__(
        self, candidate: NamedCandidate, key: str, event: Event, first_event: Event
    ) -> None:
        what = "another request" if event == first_event else f"a {first_event} request"
        super().__init__(
            "idempotency key",
            key,
            f"{candidate} already used it for {what}; send the same request, or use a new key",
        )
        self.candidate, self.event = candidate, event


class IllegalTransition(MergegateError, ValueError):
    """The table does not allow ``event`` in ``state``; nothing was written."""

    state: State
    event: Event
    candidate: NamedCandidate

    def __init__(
        self, candidate: NamedCandidate, state: State, event: Event, allowed: tuple[str, ...]
    ) -> None:
        hint = ", ".join(allowed) if allowed else "none (the state is terminal)"
        super().__init__(
            f"cannot {event} candidate {candidate} in state {state}; allowed events: {hint}",
            candidate=candidate,
            state=state,
            event=event,
        )


class ConcurrencyConflict(MergegateError, RuntimeError):
    """Another writer moved the candidate first; nothing was written. Re-read and retry."""

    candidate: NamedCandidate
    expected_seq: int | None
    actual_seq: int | None

    def __init__(
        self, candidate: NamedCandidate, expected_seq: int | None, actual_seq: int | None
    ) -> None:
        super().__init__(
            f"candidate {candidate} was moved by another writer "
            f"(expected seq {expected_seq}, found {actual_seq}); re-read its state and retry",
            candidate=candidate,
            expected_seq=expected_seq,
            actual_seq=actual_seq,
        )


class CandidateNotFound(MergegateError, LookupError):
    """No candidate has this slug; nothing was written."""

    slug: str

    def __init__(self, slug: str) -> None:
        super().__init__(
            f"no candidate with slug {slug!r}; submit it first or check `mergegate list`",
            slug=slug,
        )


class DuplicateCandidate(MergegateError, ValueError):
    """The slug is held by a different, unintegrated identity; nothing was written."""

    slug: str
    existing: NamedCandidate

    def __init__(self, slug: str, existing: NamedCandidate) -> None:
        super().__init__(
            f"slug {slug!r} is already held by {existing}; "
            "use another slug, supersede or resume the existing candidate with a new sha, "
            "or withdraw it first",
            slug=slug,
            existing=existing,
        )


class FollowUpNotResolved(MergegateError, RuntimeError):
    """``resume`` was asked before the follow-up is resolved; nothing was written."""

    candidate: NamedCandidate
    follow_up_slug: str | None

    def __init__(
        self,
        candidate: NamedCandidate,
        follow_up_slug: str | None,
        why: str,
        *,
        fix: str | None = None,
    ) -> None:
        # ``fix`` replaces the follow-up's remedy for a block the follow-up does not
        # settle (config_changed: an approval does, and a forced resume is held again).
        message = (
            f"follow-up {follow_up_slug} of {candidate} is not resolved ({why}); "
            "finish it, or resume with force and a reason"
            if fix is None
            else f"{candidate} cannot resume: {why}; {fix}"
        )
        super().__init__(message, candidate=candidate, follow_up_slug=follow_up_slug)


class LeaseHeld(MergegateError, RuntimeError):
    """The integration lease is held by another owner; nothing was written."""

    lease: str
    owner: str
    #: When the lease expires (UTC), or None when it was lost (no row holds it).
    expires_at: datetime | None
    #: True when no row holds the lease any more: another process recovered it
    #: after it expired. ``owner`` is then the one who lost it.
    lost: bool
    #: Who holds the lost lease now, when it is known (it was taken again).
    taken_by: str | None

    def __init__(
        self,
        lease: str,
        owner: str,
        expires_at: datetime | str | None,
        *,
        lost: bool = False,
        taken_by: str | None = None,
    ) -> None:
        # ISO 8601 text is accepted too: the stores and older callers pass it.
        when = datetime.fromisoformat(expires_at) if isinstance(expires_at, str) else expires_at
        by = "" if taken_by is None else f" ({taken_by!r} holds it now)"
        message = (
            f"integration lease {lease!r} of {owner!r} was lost: another process recovered it "
            f"after it expired{by}; stop this apply and re-read the candidate"
            if lost
            else f"integration lease {lease!r} is held by {owner!r} until "
            f"{None if when is None else when.isoformat()}; wait for it "
            "(from Python: start_apply_waiting), or once it has expired run "
            "`mergegate recover` (from Python: take_over, or start_apply_waiting with the applier)"
        )
        super().__init__(
            message, lease=lease, owner=owner, expires_at=when, lost=lost, taken_by=taken_by
        )


class StoreError(MergegateError, RuntimeError):
    """The store failed. ``committed`` says whether the call's transaction was committed:
    ``False`` (rolled back, nothing was written) unless a subclass says otherwise."""

    backend: str
    committed: bool | None

    def __init__(self, backend: str, message: str, *, committed: bool | None = False) -> None:
        super().__init__(f"{backend} store: {message}", backend=backend, committed=committed)


class StoreUnavailable(StoreError):
    """The store could not be reached, or could not take the call now (its connection was
    lost before the commit, a lock stayed held past the timeout); nothing was written,
    and the same call may simply be retried."""


class OutcomeUnknown(StoreError):
    """The connection was lost while the commit was on its way: ``committed`` is ``None``.

    Re-read the candidate (or retry with the same idempotency key) before acting again.
    """

    def __init__(self, backend: str, message: str) -> None:
        super().__init__(backend, message, committed=None)


class RepositoryError(MergegateError, RuntimeError):
    """The git repository cannot be used as configured; ``problem`` says how, without its name."""

    repository: str
    problem: str

    def __init__(self, repository: str, message: str) -> None:
        super().__init__(
            f"repository {repository}: {message}", repository=repository, problem=message
        )


class TableError(MergegateError, ValueError):
    """A rule set that cannot be a lifecycle; raised when the Table is built, never later."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid lifecycle table: {problem}", problem=problem)


class MoveInFlight(RepositoryError):
    """``main``'s lock is held by a mover that may still move it; nothing was decided.

    ``holder`` names the process (``host:pid``) when mergegate knows it.
    """

    holder: str | None

    def __init__(self, repository: str, holder: str | None, detail: str) -> None:
        super().__init__(repository, f"a move is in flight: {detail}")
        self.holder = holder


class QueuePaused(MergegateError, RuntimeError):
    """The queue is paused (``Engine.pause``): nothing new starts; nothing was written.

    ``actor``, ``why`` and ``at`` (ISO 8601 UTC text) are the pause's own.
    """

    actor: str
    why: str | None
    at: str

    def __init__(self, actor: str, why: str | None, at: str) -> None:
        super().__init__(
            f"the queue is paused by {actor} since {at}: {why}; "
            "wait for `mergegate unpause`, or unpause it",
            actor=actor,
            why=why,
            at=at,
        )


class QueueDraining(MergegateError, RuntimeError):
    """The queue is draining (``Engine.drain``): it admits no new candidate; nothing was written."""

    actor: str
    why: str | None
    at: str
    slug: str

    def __init__(self, slug: str, actor: str, why: str | None, at: str) -> None:
        super().__init__(
            f"cannot submit {slug!r}: the queue is draining since {at} ({actor}: {why}) and "
            "admits no new candidate; submit it after `mergegate undrain`",
            slug=slug,
            actor=actor,
            why=why,
            at=at,
        )


class ControlRefused(MergegateError, RuntimeError):
    """A queue control that does not fit the queue's state (unpause when not paused, a
    promote of a candidate that is not queued); nothing was written."""

    action: str
    problem: str

    def __init__(self, action: str, problem: str, fix: str) -> None:
        super().__init__(f"cannot {action}: {problem}; {fix}", action=action, problem=problem)
