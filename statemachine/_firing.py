"""The one interpreter of a move: a request, checked against the table, carried out.

:meth:`Table.step <.table.Table.step>` compiles each ``(event, source)`` into a
:class:`~.table.Step` whose flags say what the move does; :func:`fire_in` reads
those flags, and nothing else in mergegate decides what an effect means. A
store carries out the writes through its :class:`~.store.Transaction`; the one
store fast path (PostgreSQL's server-side call, ``persistence/postgres.py``)
accepts only the steps whose flags it declares, and declines the rest to here.

Order inside the transaction: the checks that may refuse the move (its state,
``expected_seq``, the payload, the lease, a resolved follow-up) all come before
the first write, so a refusal writes nothing; then the entry, then the writes
the flags name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from ._validation import FOLLOW_UP_SLUG_MAX, check_slug
from .approval import approval_missing
from .calls import Request
from .errors import (
    CandidateNotFound,
    ConcurrencyConflict,
    DuplicateCandidate,
    FollowUpNotResolved,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
    LeaseHeld,
)
from .followup_slug import SlugRule
from .move import Move, log_entry
from .records import BlockedReport, Candidate, Lease, Outcome, Reason, Transition
from .store import Resolver, Store, Transaction
from .table import Step, Table


class EngineSettings(Protocol):
    """What firing reads of the Engine: its settings and its store (no import of engine.py,
    which imports this module)."""

    @property
    def table(self) -> Table: ...

    store: Store
    resolver: Resolver | None
    actor: str
    lease_name: str
    lease_ttl: timedelta
    clock: Callable[[], datetime]
    follow_up_slug: SlugRule


__all__ = ["fast_move", "fire_in"]


def fire_in(engine: EngineSettings, tx: Transaction, request: Request) -> Outcome:
    """Check ``request`` against the table, append its entry, and carry out its step."""
    table = engine.table
    created = table.step(None, request.event)
    if created is not None:
        return _create(engine, tx, request, created)
    candidate = _locate(tx, request.slug)
    digest = None if request.idempotency_key is None else request.digest()
    if request.idempotency_key is not None:
        # Global: a key names one request forever, whichever candidate it moved.
        prior = tx.transition_by_key(request.idempotency_key)
        if prior is not None:
            if prior.candidate_id != candidate.id:
                raise IdempotencyKeyReused(
                    candidate.key, request.idempotency_key, request.event, prior.event
                )
            _same_request(candidate, prior, request, digest)
            return _outcome(engine, tx, candidate, prior)
    step = _check(engine, candidate, request)
    # One clock reading for the entry and the lease it takes.
    entry = _entry(engine, candidate, request, step, digest, engine.clock())
    # Guards: each may refuse the move before anything is written.
    if step.take_lease:
        # A paused queue starts nothing, named or claimed (a claim finds no head).
        tx.queue_controls().check_start()
        _take_lease(engine, tx, candidate, request, entry.at)
    if step.close_blocked:
        _check_resolved(engine, tx, candidate, request, entry.at)
    moved = tx.append(candidate, entry, step)
    if step.record_block:
        assert request.report is not None  # _check refused a block without one
        _record_block(engine, tx, moved, entry, request.report, request.follow_up)
    if step.release_lease:
        tx.drop_lease(engine.lease_name, candidate.id)
    if step.close_blocked or step.drop_blocked:
        # A dropped outcome is closed like a resumed one; the log entry says which.
        tx.close_blocked(candidate.key, entry.at)
    if request.idempotency_key is not None:
        # Report the entry as stored, so that a retry with the key returns an
        # equal one, whichever fields this store keeps.
        entry = tx.transition_by_idempotency_key(candidate.id, request.idempotency_key) or entry
    return _outcome(engine, tx, moved, entry)


def fast_move(engine: EngineSettings, request: Request) -> Move | None:
    """``request`` as a :class:`~.move.Move` a store may carry out in one piece, or ``None``.

    Only plain requests qualify: no idempotency key (a replay must answer with
    the stored entry), no new sha and no report. The store accepts the steps
    it declares and declines the rest; nothing is lost by a decline.
    """
    if request.idempotency_key is not None or request.new_sha or request.report:
        return None
    # A close the resolver must judge is never made unasked.
    may_close = engine.resolver is None or request.force_reason is not None
    steps = engine.table.steps(request.event)
    if not may_close:
        steps = tuple(s for s in steps if not s.close_blocked)
    if not steps:
        return None
    creating = steps[0].source is None
    take = steps[0].take_lease  # every rule of an event agrees on its payload effects
    if (creating and request.key is None) or (take and request.owner is None):
        return None
    at = engine.clock()
    try:
        return Move(
            request.event,
            request.slug,
            steps,
            at,
            request.actor or engine.actor,
            engine.lease_name,
            key=request.key if creating else None,
            expected_seq=request.expected_seq,
            note=request.note,
            owner=request.owner if take else None,
            expires_at=at + (request.ttl or engine.lease_ttl) if take else None,
            main_sha=request.main_sha,
            interrupted=request.interrupted,
        )
    except InvalidInput:
        # The general path checks the candidate and the move before it builds
        # the entry that refuses a bad actor: let it decide, so a missing
        # candidate or an illegal move is reported the same on either path.
        return None


def _create(engine: EngineSettings, tx: Transaction, request: Request, step: Step) -> Outcome:
    key = request.key
    if key is None:
        raise InvalidInput("candidate", None, f"{request.event} needs the candidate's identity")
    if request.idempotency_key is not None:
        prior = tx.transition_by_key(request.idempotency_key)
        if prior is not None:
            # The first answer, even after a withdraw released the slug: a
            # retried submit must not queue the work a second time.
            first = engine.store.candidate_by_id(prior.candidate_id)
            if first is None or first.key != key or prior.event is not request.event:
                raise IdempotencyKeyReused(key, request.idempotency_key, request.event, prior.event)
            return _outcome(engine, tx, first, prior)
    existing = tx.candidate(key.slug)
    if existing is not None and existing.key != key:
        if existing.state in engine.table.active:
            raise DuplicateCandidate(key.slug, existing.key)
        existing = tx.find_candidate(key)
    if existing is not None and existing.state not in engine.table.released:
        return Outcome(existing, None)
    # A draining queue admits no new candidate; a repeated submit (above) is no new one.
    tx.queue_controls().check_admit(key.slug)
    at = engine.clock()
    created = tx.insert_candidate(key, at, step)
    digest = None if request.idempotency_key is None else request.digest()
    entry = _entry(engine, created, request, step, digest, at)
    return Outcome(tx.append(created, entry, step), entry)


def _entry(
    engine: EngineSettings,
    candidate: Candidate,
    request: Request,
    step: Step,
    digest: str | None,
    at: datetime,
) -> Transition:
    """The log entry of ``step`` for ``request``."""
    return log_entry(
        candidate,
        step,
        request.actor or engine.actor,
        at,
        request.note,
        sha=request.new_sha,
        owner=request.owner,
        main_sha=request.main_sha,
        interrupted=request.interrupted,
        idempotency_key=request.idempotency_key,
        request_digest=digest,
    )


def _locate(tx: Transaction, slug: str) -> Candidate:
    check_slug(slug)
    candidate = tx.candidate(slug)
    if candidate is None:
        raise CandidateNotFound(slug)
    return candidate


def _check(engine: EngineSettings, candidate: Candidate, request: Request) -> Step:
    """The step ``request`` takes from ``candidate``'s state, once the request may take it."""
    expected = request.expected_seq
    if expected is not None and expected != candidate.seq:
        raise ConcurrencyConflict(candidate.key, expected, candidate.seq)
    step = engine.table.step(candidate.state, request.event)
    if step is None:
        allowed = tuple(e.value for e in engine.table.events_from(candidate.state))
        raise IllegalTransition(candidate.key, candidate.state, request.event, allowed)
    if step.take_lease and request.owner is None:
        raise InvalidInput("lease owner", None, f"{request.event} takes the lease")
    if step.record_block and request.report is None:
        raise InvalidInput("blocked report", None, f"{request.event} records a block")
    if request.new_sha is not None and not step.supersede_sha:
        raise InvalidInput("new sha", request.new_sha, f"{request.event} keeps the sha")
    return step


def _same_request(
    candidate: Candidate, prior: Transition, request: Request, digest: str | None
) -> None:
    """Refuse a reused idempotency key whose request differs from the first one."""
    key = request.idempotency_key
    assert key is not None
    if prior.event is not request.event:
        raise IdempotencyKeyReused(candidate.key, key, request.event, prior.event)
    if prior.request_digest is not None:
        same = prior.request_digest == digest
    else:
        # An entry without a digest (logged before digests, or by a store that
        # does not keep them): compare what the entry itself recorded.
        same = prior.reason == request.note and request.new_sha in (None, prior.sha)
    if not same:
        raise IdempotencyKeyReused(candidate.key, key, request.event, prior.event)


def _take_lease(
    engine: EngineSettings, tx: Transaction, candidate: Candidate, request: Request, now: datetime
) -> None:
    held = tx.lease(engine.lease_name)
    if held is not None:
        if held.candidate_id is None and held.owner == request.owner and held.expires_at > now:
            # A link of the owner's live chain: it runs under the lease already held.
            return
        raise LeaseHeld(engine.lease_name, held.owner, held.expires_at.isoformat())
    assert request.owner is not None  # _check refused a start without one
    expires = now + (request.ttl or engine.lease_ttl)
    tx.put_lease(Lease(engine.lease_name, request.owner, candidate.id, now, expires))


def _check_resolved(
    engine: EngineSettings, tx: Transaction, candidate: Candidate, request: Request, at: datetime
) -> None:
    record = tx.blocked_record(candidate.key)
    if record is None or request.force_reason is not None or engine.resolver is None:
        return
    if record.reason is Reason.CONFIG_CHANGED:
        # An operator's approval of the sha settles it, not the follow-up todo.
        refused = approval_missing(engine.store, record)
        if refused is not None:
            raise refused
    else:
        why = engine.resolver.unresolved_reason(record)
        if why is not None:
            raise FollowUpNotResolved(candidate.key, record.follow_up_slug, why)
    tx.mark_resolved(candidate.key, at)


def _record_block(
    engine: EngineSettings,
    tx: Transaction,
    candidate: Candidate,
    entry: Transition,
    report: BlockedReport,
    explicit: str | None,
) -> None:
    key = candidate.key
    record = tx.blocked_record(key)
    if record is None:
        slug = explicit or engine.follow_up_slug(key, tx.follow_up_owner)
        # A custom rule or an explicit slug is checked like the default's: a valid
        # slug that no other identity's follow-up holds. Raising here writes nothing.
        check_slug(slug, field="follow-up slug", limit=FOLLOW_UP_SLUG_MAX)
        holder = tx.follow_up_owner(slug)
        if holder is not None and holder != key:
            raise InvalidInput(
                "follow-up slug", slug, f"it is the follow-up of {holder.slug}; choose another"
            )
        previous = tx.latest_follow_up(key.slug)
        previous = None if previous == slug else previous
    else:
        slug, previous = record.follow_up_slug, record.previous_follow_up
    tx.record_block(
        key, report, seq=entry.seq, at=entry.at, follow_up_slug=slug, previous_follow_up=previous
    )


def _outcome(
    engine: EngineSettings, tx: Transaction, candidate: Candidate, entry: Transition
) -> Outcome:
    blocked = None
    if candidate.state in engine.table.carrying_blocked:
        blocked = tx.blocked_record(candidate.key)
    return Outcome(candidate, entry, blocked)
