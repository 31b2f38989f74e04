"""The Engine: the Python API an orchestrator drives.

Every call is one store transaction that reads the candidate, checks the move
against the table, and writes the log entry (and, for a block, the outcome row,
the evidence and the outbox row) together. Hooks and guidance run after the
commit, so nothing they do can tear a half-written move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import groupby

import attrs

from .applier import AlreadyIntegrated, Applier, Blocked, Integrated
from .calls import Op, _Moves
from .errors import (
    CandidateNotFound,
    ConcurrencyConflict,
    DuplicateCandidate,
    FollowUpNotResolved,
    IllegalTransition,
    InvalidInput,
    LeaseHeld,
)
from .fold import Violation, verify_log
from .followup_slug import follow_up_slug
from .logfmt import log_outcome
from .machine import LifecycleMachine, lifecycle
from .records import (
    BlockedReport,
    Candidate,
    CandidateKey,
    Evidence,
    Lease,
    Outcome,
    Reason,
    Transition,
)
from .states import Event, State
from .store import Guide, Hook, Resolver, Store, Transaction
from .validation import check_sha, check_slug, check_text

__all__ = ["Batch", "Engine"]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


@attrs.define
class Engine(_Moves):
    """Fires lifecycle events through a :class:`Store`, atomically, and runs hooks after commit."""

    store: Store
    hooks: Sequence[Hook] = ()
    guide: Guide | None = None
    resolver: Resolver | None = None
    actor: str = "mergegate"
    lease_name: str = "main"
    lease_ttl: timedelta = timedelta(minutes=10)
    clock: Callable[[], datetime] = utcnow
    machine: LifecycleMachine = attrs.field(factory=lifecycle)

    @property
    def _engine(self) -> Engine:  # type: ignore[override]
        return self

    def _execute(self, op: Op) -> Outcome:
        with self.store.transaction() as tx:
            outcome = op(tx)
        return self._after(outcome)

    def _after(self, outcome: Outcome) -> Outcome:
        for hook in self.hooks:
            outcome = hook.after_commit(outcome)
        if outcome.blocked is not None and outcome.guidance is None and self.guide is not None:
            outcome = attrs.evolve(
                outcome, guidance=self.guide.render(outcome.candidate, outcome.blocked)
            )
        log_outcome(outcome)
        return outcome

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        """Run many moves in ONE transaction: all of them commit, or none.

        Hooks run for each outcome after the commit; read them from
        ``batch.outcomes`` once the ``with`` block has exited.
        """
        with self.store.transaction() as tx:
            batch = Batch(self, tx)
            yield batch
        batch.outcomes = [self._after(o) for o in batch.provisional]

    # -- reads ---------------------------------------------------------------

    def get(self, slug: str) -> Candidate:
        """The candidate holding ``slug`` (the active one, else the newest integrated one)."""
        check_slug(slug)
        candidate = self.store.candidate(slug)
        if candidate is None:
            raise CandidateNotFound(slug)
        return candidate

    def show(self, slug: str) -> Outcome:
        """The candidate, its last move, its open blocked outcome and the current guidance."""
        candidate = self.get(slug)
        history = self.store.history(candidate.id)
        blocked = None
        if candidate.state in (State.BLOCKED, State.REMEDIATING):
            blocked = self.store.blocked_record(candidate.key)
        guidance = None
        if blocked is not None and self.guide is not None:
            guidance = self.guide.render(candidate, blocked)
        return Outcome(candidate, history[-1] if history else None, blocked, guidance)

    def verify(self) -> list[Violation]:
        """Replay every log against the table; compare each fold with the stored state."""
        candidates = {c.id: c for c in self.store.candidates()}
        problems: list[Violation] = []
        seen: set[int] = set()
        for cid, entries in groupby(self.store.log(), key=lambda t: t.candidate_id):
            seen.add(cid)
            if cid not in candidates:
                problems.append(Violation(cid, None, "log entries for an unknown candidate"))
                continue
            problems.extend(verify_log(candidates[cid], entries))
        for cid in candidates.keys() - seen:
            problems.append(Violation(cid, None, "candidate has no log entries"))
        return problems

    # -- driving an applier --------------------------------------------------

    def apply(self, slug: str, applier: Applier, *, owner: str) -> Outcome:
        """Apply one candidate: ``start_apply``, the applier, then ``integrate`` or ``block``.

        The lease is renewed through the applier's heartbeat. If the applier
        raises, the candidate stays ``applying`` under its lease, and
        :meth:`recover` blocks it once the lease expires.
        """
        return self._finish_apply(self.start_apply(slug, owner=owner), applier, owner)

    def apply_next(self, applier: Applier, *, owner: str) -> Outcome | None:
        """Apply the oldest ``pending`` or ``retry`` candidate; ``None`` if there is none.

        The candidate is claimed and started in one transaction, so two
        integrators never start the same one.
        """
        with self.store.transaction() as tx:
            slug = tx.claim_next()
            started = None if slug is None else self._start_apply(tx, slug, owner, None, None, None)
        if started is None:
            return None
        return self._finish_apply(self._after(started), applier, owner)

    def _finish_apply(self, started: Outcome, applier: Applier, owner: str) -> Outcome:
        key, seq = started.candidate.key, started.candidate.seq

        def heartbeat() -> None:
            self.renew_lease(owner)

        result = applier.apply(key, heartbeat)
        match result:
            case Blocked(report):
                return self.block(key.slug, report, expected_seq=seq)
            case Integrated(main_sha) | AlreadyIntegrated(main_sha):
                return self.integrate(key.slug, main_sha=main_sha, expected_seq=seq)
        raise TypeError(f"unknown apply result {result!r}")  # pragma: no cover

    # -- leases and recovery -------------------------------------------------

    def renew_lease(self, owner: str, ttl: timedelta | None = None) -> Lease:
        """Extend ``owner``'s integration lease; raises LeaseHeld if it was lost."""
        return self.store.renew_lease(
            self.lease_name, owner, self.clock() + (ttl or self.lease_ttl)
        )

    def recover(
        self, main_sha: str, *, contains: Callable[[str], bool] | None = None
    ) -> list[Outcome]:
        """Settle every candidate whose apply lease expired.

        Such a candidate is blocked with reason ``apply_interrupted``, unless
        ``contains`` says that ``main_sha`` already contains its sha: then the
        apply moved ``main`` and died before it recorded that, and the candidate
        is integrated at ``main_sha`` instead. Without ``contains`` (an
        orchestrator that cannot ask its repository), every one is blocked, and
        its next apply finds it already integrated.
        """
        check_sha(main_sha, field="main sha")
        now = self.clock()
        outcomes = []
        for lease in self.store.leases():
            if lease.expires_at > now or lease.candidate_id is None:
                continue
            candidate = self.store.candidate_by_id(lease.candidate_id)
            if candidate is None:
                continue
            if contains is not None and contains(candidate.key.sha):
                try:
                    outcomes.append(
                        self.integrate(
                            candidate.key.slug, main_sha=main_sha, expected_seq=candidate.seq
                        )
                    )
                except (ConcurrencyConflict, IllegalTransition):
                    continue
                continue
            report = BlockedReport(
                Reason.APPLY_INTERRUPTED,
                main_sha,
                Evidence(lease_owner=lease.owner, lease_since=lease.acquired_at),
                detail=f"the apply lease held by {lease.owner} expired at "
                f"{lease.expires_at.isoformat()}",
            )
            try:
                outcomes.append(self._execute(self._interrupt(candidate, report)))
            except (ConcurrencyConflict, IllegalTransition):
                # Another recoverer, or the holder itself, finished it first.
                continue
        return outcomes

    def _interrupt(self, candidate: Candidate, report: BlockedReport) -> Op:
        slug, seq = candidate.key.slug, candidate.seq
        return lambda tx: self._block(tx, slug, report, Event.INTERRUPT, seq, None)

    # -- the moves, inside a transaction -------------------------------------

    def _now_entry(
        self,
        candidate: Candidate,
        event: Event,
        dest: State,
        *,
        sha: str | None = None,
        note: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Transition:
        return Transition(
            candidate_id=candidate.id,
            seq=candidate.seq + 1,
            event=event,
            source=candidate.state if candidate.seq else None,
            dest=dest,
            sha=sha or candidate.key.sha,
            actor=actor or self.actor,
            at=self.clock(),
            reason=note,
            idempotency_key=idempotency_key,
        )

    def _locate(self, tx: Transaction, slug: str) -> Candidate:
        check_slug(slug)
        candidate = tx.candidate(slug)
        if candidate is None:
            raise CandidateNotFound(slug)
        return candidate

    def _check(self, candidate: Candidate, event: Event, expected_seq: int | None) -> State:
        if expected_seq is not None and expected_seq != candidate.seq:
            raise ConcurrencyConflict(candidate.key, expected_seq, candidate.seq)
        dest = self.machine.destination(candidate.state, event)
        if dest is None:
            allowed = tuple(e.value for e in self.machine.table.events_from(candidate.state))
            raise IllegalTransition(candidate.key, candidate.state, event, allowed)
        return dest

    def _move(
        self,
        tx: Transaction,
        slug: str,
        event: Event,
        expected_seq: int | None,
        idempotency_key: str | None,
        *,
        note: str | None = None,
        sha: str | None = None,
        guard: Callable[[Candidate], None] | None = None,
    ) -> tuple[Candidate, Transition, bool]:
        """Check and append one move; the flag says whether it was newly written."""
        candidate = self._locate(tx, slug)
        if idempotency_key is not None:
            prior = tx.transition_by_idempotency_key(candidate.id, idempotency_key)
            if prior is not None:
                if prior.event is not event:
                    raise InvalidInput(
                        "idempotency key", idempotency_key, f"it was already used for {prior.event}"
                    )
                return candidate, prior, False
        dest = self._check(candidate, event, expected_seq)
        if guard is not None:
            guard(candidate)
        entry = self._now_entry(
            candidate, event, dest, sha=sha, note=note, idempotency_key=idempotency_key
        )
        return tx.append(candidate, entry), entry, True

    def _outcome(self, tx: Transaction, moved: tuple[Candidate, Transition, bool]) -> Outcome:
        candidate, entry, _ = moved
        blocked = None
        if candidate.state in (State.BLOCKED, State.REMEDIATING):
            blocked = tx.blocked_record(candidate.key)
        return Outcome(candidate, entry, blocked)

    def _release(self, tx: Transaction, moved: tuple[Candidate, Transition, bool]) -> Outcome:
        candidate, entry, fresh = moved
        if fresh and entry.source is State.APPLYING:
            tx.drop_lease(self.lease_name, candidate.id)
        return self._outcome(tx, moved)

    def _submit(
        self, tx: Transaction, key: CandidateKey, actor: str | None, idempotency_key: str | None
    ) -> Outcome:
        existing = tx.candidate(key.slug)
        if existing is not None and existing.key != key:
            if existing.state is not State.INTEGRATED:
                raise DuplicateCandidate(key.slug, existing.key)
            existing = tx.find_candidate(key)
        if existing is not None:
            return Outcome(existing, None)
        created = tx.insert_candidate(key, self.clock())
        entry = self._now_entry(
            created, Event.SUBMIT, State.PENDING, idempotency_key=idempotency_key, actor=actor
        )
        return Outcome(tx.append(created, entry), entry)

    def _start_apply(
        self,
        tx: Transaction,
        slug: str,
        owner: str,
        ttl: timedelta | None,
        expected_seq: int | None,
        idempotency_key: str | None,
    ) -> Outcome:
        check_text(owner, field="lease owner")

        def take_lease(candidate: Candidate) -> None:
            held = tx.lease(self.lease_name)
            if held is not None:
                raise LeaseHeld(self.lease_name, held.owner, held.expires_at.isoformat())
            now = self.clock()
            tx.put_lease(
                Lease(self.lease_name, owner, candidate.id, now, now + (ttl or self.lease_ttl))
            )

        moved = self._move(
            tx,
            slug,
            Event.START_APPLY,
            expected_seq,
            idempotency_key,
            note=f"lease owner={owner}",
            guard=take_lease,
        )
        return self._outcome(tx, moved)

    def _block(
        self,
        tx: Transaction,
        slug: str,
        report: BlockedReport,
        event: Event,
        expected_seq: int | None,
        idempotency_key: str | None,
    ) -> Outcome:
        moved = self._move(tx, slug, event, expected_seq, idempotency_key, note=report.reason.value)
        candidate, entry, fresh = moved
        if fresh:
            key = candidate.key
            record = tx.blocked_record(key)
            if record is None:
                slug_ = follow_up_slug(key, tx.follow_up_owner)
                previous = tx.latest_follow_up(key.slug)
                previous = None if previous == slug_ else previous
            else:
                slug_, previous = record.follow_up_slug, record.previous_follow_up
            tx.record_block(
                key,
                report,
                seq=entry.seq,
                at=entry.at,
                follow_up_slug=slug_,
                previous_follow_up=previous,
            )
        return self._release(tx, moved)

    def _resume(
        self,
        tx: Transaction,
        slug: str,
        new_sha: str | None,
        force_reason: str | None,
        expected_seq: int | None,
        idempotency_key: str | None,
    ) -> Outcome:
        def resolved(candidate: Candidate) -> None:
            record = tx.blocked_record(candidate.key)
            if record is None or force_reason is not None or self.resolver is None:
                return
            why = self.resolver.unresolved_reason(record)
            if why is not None:
                raise FollowUpNotResolved(candidate.key, record.follow_up_slug, why)

        note = f"forced: {force_reason}" if force_reason is not None else None
        before = self._locate(tx, slug)
        moved = self._move(
            tx,
            slug,
            Event.RESUME,
            expected_seq,
            idempotency_key,
            note=note,
            sha=new_sha,
            guard=resolved,
        )
        if moved[2]:
            tx.close_blocked(before.key, moved[1].at)
        return self._outcome(tx, moved)


@attrs.define
class Batch(_Moves):
    """Moves collected into one transaction by :meth:`Engine.batch`."""

    engine: Engine
    tx: Transaction
    provisional: list[Outcome] = attrs.Factory(list)
    outcomes: list[Outcome] = attrs.Factory(list)

    @property
    def _engine(self) -> Engine:  # type: ignore[override]
        return self.engine

    def _execute(self, op: Op) -> Outcome:
        outcome = op(self.tx)
        self.provisional.append(outcome)
        return outcome
