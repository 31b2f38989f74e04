"""The Engine: the Python API an orchestrator drives.

Every call is one :class:`~.calls.Request`, fired through one path: a store
transaction that reads the candidate, looks up the table's rule for the move,
writes the log entry, and carries out the rule's effects (take or release the
lease, record the block and enqueue its follow-up, close the blocked record)
together. Hooks and guidance run after the commit, so nothing they do can tear
a half-written move, and a hook that fails is reported beside the outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import groupby

import attrs

from .applier import AlreadyIntegrated, Applier, Blocked, Integrated
from .approval import approval_missing, approve
from .calls import Calls, Request
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
from .fold import Violation, verify_log
from .followup_slug import SlugRule, follow_up_slug
from .hooks import HookLike, Subscription, run_hooks, subscriptions
from .interruptions import INTERRUPTED, MAX_INTERRUPTIONS, interruption_evidence, interruptions
from .ledger import Approval
from .logfmt import log_outcome
from .machine import LifecycleMachine, lifecycle
from .move import Move, Moved, Step, steps_for
from .records import (
    BlockedReport,
    Candidate,
    Evidence,
    Lease,
    Outcome,
    Reason,
    Transition,
)
from .states import Event, State
from .store import Guide, Resolver, Store, Transaction
from .table import Effect, Rule, Table
from .validation import FOLLOW_UP_SLUG_MAX, check_sha, check_slug, check_text

__all__ = ["Batch", "Engine"]


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def _resubscribe(
    engine: Engine, _attribute: object, hooks: Sequence[HookLike]
) -> Sequence[HookLike]:
    engine._subscribed = subscriptions(hooks)
    return hooks


@attrs.define
class Engine(Calls):
    """Fires lifecycle events through a :class:`Store`, atomically, and runs hooks after commit.

    ``hooks`` are checked here, at construction: each is a ``Hook`` (an object
    with ``after_commit``), a callable taking the outcome, or a subscription
    from :func:`~.hooks.on_enter`, :func:`~.hooks.on_event` or
    :func:`~.hooks.on_outcome`.
    """

    store: Store
    #: As given (so ``engine.hooks[0]`` is still your hook); checked on construction
    #: and on assignment, and kept as subscriptions in ``_subscribed``.
    hooks: Sequence[HookLike] = attrs.field(default=(), on_setattr=_resubscribe)
    guide: Guide | None = None
    resolver: Resolver | None = None
    actor: str = "mergegate"
    lease_name: str = "main"
    lease_ttl: timedelta = timedelta(minutes=10)
    clock: Callable[[], datetime] = utcnow
    machine: LifecycleMachine = attrs.field(factory=lifecycle)
    #: The apply heartbeat only reads the lease (is it still ours?) until it was
    #: renewed this long ago, and writes a renewal after that: by default after a
    #: third of ``lease_ttl``, so a fast apply costs two commits (start, then
    #: integrate or block), not one more per beat. ``None`` renews on every call.
    renew_after: timedelta | None = attrs.field(
        default=attrs.Factory(lambda engine: engine.lease_ttl / 3, takes_self=True)
    )
    #: Chooses a first block's follow-up slug when the call names none (``block(follow_up=)``).
    follow_up_slug: SlugRule = follow_up_slug
    #: Let a store that offers one (``Store.move``) carry out a plain move in one
    #: piece (see :mod:`.move`); ``False`` fires every call through the general path.
    fast_path: bool = True
    _subscribed: tuple[Subscription, ...] = attrs.field(init=False, repr=False, default=())
    _steps: dict[tuple[Event, bool], tuple[Step, ...]] = attrs.field(
        init=False, repr=False, factory=dict
    )

    def __attrs_post_init__(self) -> None:
        self._subscribed = subscriptions(self.hooks)

    @property
    def table(self) -> Table:
        """The lifecycle table this Engine enforces."""
        return self.machine.table

    def fire(self, request: Request) -> Outcome:
        """Fire ``request`` in a transaction of its own, then run the hooks."""
        # A store that offers ``move`` (a Mover) gets plain moves in one piece.
        mover: Callable[[Move], Moved | None] | None = getattr(self.store, "move", None)
        move = None if mover is None or not self.fast_path else self._fast_move(request)
        if move is not None:
            assert mover is not None
            moved = mover(move)
            if moved is not None:
                return self._after(Outcome(moved.candidate, moved.entry))
        # The general path reads the clock inside the transaction, once it holds
        # the candidate, so a call that waited for another writer is stamped
        # after that writer's move (a store declines a fast move for the same reason).
        with self.store.transaction() as tx:
            outcome = self._fire(tx, request)
        return self._after(outcome)

    def _fast_move(self, request: Request) -> Move | None:
        """``request`` as a :class:`~.move.Move`, when the store may try it in one piece.

        Only plain requests qualify: no idempotency key (a replay must answer
        with the stored entry), no new sha and no report (those effects stay
        on the general path). The store may still decline; nothing is lost.
        """
        if (
            request.idempotency_key is not None
            or request.new_sha is not None
            or request.report is not None
        ):
            return None
        may_close = self.resolver is None or request.force_reason is not None
        cached = (request.event, may_close)
        steps = self._steps.get(cached)
        if steps is None:
            steps = self._steps[cached] = steps_for(self.table, request.event, may_close=may_close)
        if not steps:
            return None
        creating = steps[0].source is None
        if creating and request.key is None:
            return None
        # Every rule of an event agrees on taking the lease (a payload effect).
        take = steps[0].take_lease
        if take and request.owner is None:
            return None
        at = self.clock()
        ttl = request.ttl or self.lease_ttl
        try:
            return Move(
                request.event,
                request.slug,
                steps,
                at,
                request.actor or self.actor,
                self.lease_name,
                key=request.key if creating else None,
                expected_seq=request.expected_seq,
                note=request.note,
                owner=request.owner if take else None,
                expires_at=at + ttl if take else None,
            )
        except InvalidInput:
            # The general path checks the candidate and the move before it builds
            # the entry that refuses a bad actor: let it decide, so a missing
            # candidate or an illegal move is reported the same on either path.
            return None

    def _after(self, outcome: Outcome) -> Outcome:
        outcome, failures = run_hooks(self._subscribed, outcome)
        if outcome.blocked is not None and outcome.guidance is None and self.guide is not None:
            outcome = attrs.evolve(
                outcome, guidance=self.guide.render(outcome.candidate, outcome.blocked)
            )
        if failures:
            outcome = attrs.evolve(outcome, hook_errors=outcome.hook_errors + failures)
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

    def _current(self, slug: str) -> Candidate | None:
        return self.store.candidate(slug)

    def _table(self) -> Table:
        return self.table

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
        if candidate.state in self.table.carrying_blocked:
            blocked = self.store.blocked_record(candidate.key)
        guidance = None
        if blocked is not None and self.guide is not None:
            guidance = self.guide.render(candidate, blocked)
        return Outcome(candidate, history[-1] if history else None, blocked, guidance)

    def approve(self, slug: str, *, sha: str, why: str, actor: str | None = None) -> Approval:
        """Log an operator's approval of ``slug``'s configuration change at exactly ``sha``.

        A candidate held for it (``config_changed``) moves to ``remediating``;
        ``resume`` then finds the block settled. Raises InvalidInput (a sha that
        is not the candidate's current one, an empty ``why``) or
        CandidateNotFound, having written nothing. See :mod:`.approval`.
        """
        return approve(self, slug, sha=sha, why=why, at=self.clock(), actor=actor)

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
        started = self.start_next(owner=owner)
        if started is None:
            return None
        return self._finish_apply(started, applier, owner)

    def start_next(self, *, owner: str) -> Outcome | None:
        """Claim the oldest ``pending`` or ``retry`` candidate and start its apply.

        Claimed and started in one transaction, so two integrators never start
        the same one; ``None`` if the queue is empty. A speculative chain calls
        this once per link, under the chain lease :meth:`hold_lease` took.
        """
        with self.store.transaction() as tx:
            slug = tx.claim_next()
            started = (
                None
                if slug is None
                else self._fire(tx, Request(Event.START_APPLY, slug, owner=owner))
            )
        return None if started is None else self._after(started)

    def _finish_apply(self, started: Outcome, applier: Applier, owner: str) -> Outcome:
        key, seq = started.candidate.key, started.candidate.seq
        # The lease was taken (or renewed) at this time, for lease_ttl.
        # (An idempotent replay reports the older entry's time: it renews sooner.)
        renewed = started.transition.at if started.transition is not None else self.clock()

        def heartbeat(fence: bool = True) -> None:
            """Renew the lease; a routine beat (``fence=False``) only after a third of its TTL.

            A routine beat while more than two-thirds of the TTL remains costs a
            durable commit and tells nothing new, so it is skipped. The fence,
            the call right before ``main`` moves (the default, so an applier that
            does not say which beat it makes is always checked), always asks the
            store: that is what stops a lease lost to ``recover`` from moving main.
            """
            nonlocal renewed
            now = self.clock()
            if not fence and now - renewed < self.lease_ttl / 3:
                return
            self._heartbeat(owner)
            renewed = now

        result = applier.apply(key, heartbeat)
        match result:
            case Blocked(report):
                return self.block(key.slug, report, expected_seq=seq)
            case Integrated(main_sha) | AlreadyIntegrated(main_sha):
                try:
                    return self.integrate(key.slug, main_sha=main_sha, expected_seq=seq)
                except ConcurrencyConflict:
                    # A recovery may settle the move between the applier's commit
                    # and this record (the lease ran out during a slow fenced push):
                    # the candidate is then integrated exactly once, at this sha.
                    settled = self._integrated_at(started.candidate.id, main_sha)
                    if settled is None:
                        raise
                    return settled
        raise TypeError(f"unknown apply result {result!r}")  # pragma: no cover

    def _integrated_at(self, candidate_id: int, main_sha: str) -> Outcome | None:
        """The candidate's outcome if its last move integrated it at ``main_sha``, else ``None``."""
        candidate = self.store.candidate_by_id(candidate_id)
        if candidate is None or candidate.state is not State.INTEGRATED:
            return None
        last = self.store.history(candidate_id)[-1]
        if last.event is not Event.INTEGRATE or last.reason != f"main={main_sha}":
            return None
        return Outcome(candidate, last)

    # -- leases and recovery -------------------------------------------------

    def _heartbeat(self, owner: str) -> None:
        """Renew ``owner``'s lease, or with ``renew_after`` check it while it is fresh.

        A check is a read, a renewal a write with its fsync: a fast apply calls
        the heartbeat three times in as many milliseconds, and only the renewal
        that keeps the lease from expiring needs to be written. The fenced call
        (under git's lock on main) is as safe either way: recovery cannot take
        the lease without that lock, and a lost lease raises LeaseHeld here too.
        """
        if self.renew_after is not None:
            fresh_until = self.lease_ttl - self.renew_after
            now = self.clock()
            for lease in self.store.leases():
                mine = lease.name == self.lease_name and lease.owner == owner
                if mine and lease.expires_at - now > fresh_until:
                    return
        self.renew_lease(owner)

    def renew_lease(self, owner: str, ttl: timedelta | None = None) -> Lease:
        """Extend ``owner``'s integration lease; raises LeaseHeld if it was lost."""
        return self.store.renew_lease(
            self.lease_name, owner, self.clock() + (ttl or self.lease_ttl)
        )

    def hold_lease(self, owner: str, ttl: timedelta | None = None) -> Lease:
        """Take the integration lease for ``owner`` itself, for a speculative chain.

        The lease names no candidate; while it is live, each ``start_apply`` by
        ``owner`` joins it, so several candidates can be ``applying`` at once,
        each under this one lease (its start_apply entry names the owner).
        Raises LeaseHeld if the lease is held, even an expired one.
        """
        check_text(owner, field="lease owner")
        with self.store.transaction() as tx:
            held = tx.lease(self.lease_name)
            if held is not None:
                raise LeaseHeld(self.lease_name, held.owner, held.expires_at.isoformat())
            now = self.clock()
            lease = Lease(self.lease_name, owner, None, now, now + (ttl or self.lease_ttl))
            tx.put_lease(lease)
        return lease

    def release_lease(self, owner: str) -> bool:
        """Release ``owner``'s chain lease; say whether it still held it.

        Call it once no link of the chain is ``applying`` any more.
        """
        with self.store.transaction() as tx:
            held = tx.lease(self.lease_name)
            if held is None or held.owner != owner or held.candidate_id is not None:
                return False
            tx.drop_chain_lease(self.lease_name, owner)
        return True

    def chain_links(self, lease: Lease) -> list[Candidate]:
        """The ``applying`` candidates that joined ``lease`` (a chain lease), oldest first."""
        found = []
        for candidate in self.store.candidates(State.APPLYING):
            history = self.store.history(candidate.id)
            last = history[-1] if history else None
            if (
                last is not None
                and last.event is Event.START_APPLY
                and last.reason == f"lease owner={lease.owner}"
            ):
                found.append(candidate)
        return found

    def _recover_chain(
        self, lease: Lease, main_sha: str, contains: Callable[[str], bool] | None
    ) -> list[Outcome]:
        """Settle an expired chain lease: its links are integrated if main has them, else requeued.

        The lease is dropped in the same transaction, so the stalled holder's
        next heartbeat (which it makes under the fence, before any move) fails,
        and no link is left ``applying`` without a lease.
        """
        links = self.chain_links(lease)
        cause = (
            f"the chain of {lease.owner} lost its lease "
            f"(it expired at {lease.expires_at.isoformat()} or its process is gone)"
        )
        with self.batch() as batch:
            held = batch.tx.lease(self.lease_name)
            if held != lease:
                # Renewed, released or already recovered since it was read.
                return []
            batch.tx.drop_chain_lease(self.lease_name, lease.owner)
            for link in links:
                if contains is not None and contains(link.key.sha):
                    batch.integrate(link.key.slug, main_sha=main_sha, expected_seq=link.seq)
                else:
                    batch.fire(self.interruption(link, main_sha, lease, cause))
        return batch.outcomes

    def interruption(
        self, candidate: Candidate, main_sha: str, lease: Lease, cause: str
    ) -> Request:
        """The move that settles ``candidate``'s apply, interrupted by its integrator for ``cause``.

        A ``requeue`` (logged with the cause; the candidate keeps its place, no
        follow-up), unless this is its :data:`MAX_INTERRUPTIONS`-th interruption
        in a row: then an ``interrupt`` that blocks it ``apply_interrupted``
        with the evidence of each (see ``interruptions.py``).
        """
        earlier = interruptions(self.store.history(candidate.id))
        if len(earlier) + 1 < MAX_INTERRUPTIONS:
            return Request(
                Event.REQUEUE,
                candidate.key.slug,
                why=f"{INTERRUPTED}{cause}",
                expected_seq=candidate.seq,
            )
        report = BlockedReport(
            Reason.APPLY_INTERRUPTED,
            main_sha,
            Evidence(lease_owner=lease.owner, lease_since=lease.acquired_at),
            detail=interruption_evidence(earlier, cause),
        )
        return Request(
            Event.INTERRUPT, candidate.key.slug, report=report, expected_seq=candidate.seq
        )

    def recover(
        self,
        main_sha: str,
        *,
        contains: Callable[[str], bool] | None = None,
        abandoned: Callable[[Lease], bool] | None = None,
    ) -> list[Outcome]:
        """Settle every candidate whose apply lease expired, or was ``abandoned``.

        Such a candidate is requeued (its integrator's fault, not its own; see
        :meth:`interruption`: the third interruption in a row blocks it
        ``apply_interrupted``), unless ``contains`` says that ``main_sha``
        already contains its sha: then the apply moved ``main`` and died before
        it recorded that, and the candidate is integrated at ``main_sha``
        instead. Without ``contains`` (an orchestrator that cannot ask its
        repository), every one is requeued, and its next apply finds it
        already integrated.

        ``abandoned`` lets a caller settle a lease before it expires: it is asked
        about each live lease, and says ``True`` when its holder is known to be
        gone (a dead process on this host, as git's ``gc.pid`` rule judges it).
        Call it, like the rest of recovery, while ``main`` is held.
        """
        check_sha(main_sha, field="main sha")
        now = self.clock()
        outcomes = []
        for lease in self.store.leases():
            expired = lease.expires_at <= now
            if not expired and (abandoned is None or not abandoned(lease)):
                continue
            if lease.candidate_id is None:
                outcomes.extend(self._recover_chain(lease, main_sha, contains))
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
            cause = (
                f"the apply lease held by {lease.owner} expired at {lease.expires_at.isoformat()}"
                if expired
                else f"the apply lease held by {lease.owner} was abandoned: its process is gone"
            )
            interrupt = self.interruption(candidate, main_sha, lease, cause)
            try:
                outcomes.append(self.fire(interrupt))
            except (ConcurrencyConflict, IllegalTransition):
                # Another recoverer, or the holder itself, finished it first.
                continue
        return outcomes

    # -- the one fire path, inside a transaction ---------------------------

    def _fire(self, tx: Transaction, request: Request) -> Outcome:
        """Check ``request`` against the table, append its entry, and carry out its effects."""
        if self.table.rule(None, request.event) is not None:
            return self._create(tx, request)
        candidate = self._locate(tx, request.slug)
        digest = None if request.idempotency_key is None else request.digest()
        if request.idempotency_key is not None:
            # Global: a key names one request forever, whichever candidate it moved.
            prior = tx.transition_by_key(request.idempotency_key)
            if prior is not None:
                if prior.candidate_id != candidate.id:
                    raise IdempotencyKeyReused(
                        candidate.key, request.idempotency_key, request.event, prior.event
                    )
                self._same_request(candidate, prior, request, digest)
                return self._outcome(tx, candidate, prior)
        dest = self._check(candidate, request.event, request.expected_seq)
        rule = self.table.rule(candidate.state, request.event)
        assert rule is not None  # _check found the move
        effects = self._payload_for(rule, request)
        # One clock reading for the entry and the lease it takes, as on the fast path.
        entry = self._now_entry(
            candidate,
            request.event,
            dest,
            sha=request.new_sha,
            note=request.note,
            idempotency_key=request.idempotency_key,
            actor=request.actor,
            request_digest=digest,
        )
        # Guards: each may refuse the move before the entry is appended.
        if Effect.TAKE_LEASE in effects:
            self._take_lease(tx, candidate, request, entry.at)
        if Effect.CLOSE_BLOCKED in effects:
            self._check_resolved(tx, candidate, request, entry.at)
        moved = tx.append(candidate, entry)
        if Effect.RECORD_BLOCK in effects:
            # record_block also enqueues the follow-up (Effect.ENQUEUE_FOLLOW_UP):
            # the table guarantees that the two effects always come together.
            assert request.report is not None  # _payload_for checked it
            self._record_block(tx, moved, entry, request.report, request.follow_up)
        if Effect.RELEASE_LEASE in effects:
            tx.drop_lease(self.lease_name, candidate.id)
        if Effect.CLOSE_BLOCKED in effects or Effect.DROP_BLOCKED in effects:
            # A dropped outcome is closed like a resumed one; the log entry says which.
            tx.close_blocked(candidate.key, entry.at)
        if request.idempotency_key is not None:
            # Report the entry as stored, so that a retry with the key returns an
            # equal one, whichever fields this store keeps.
            entry = tx.transition_by_idempotency_key(candidate.id, request.idempotency_key) or entry
        return self._outcome(tx, moved, entry)

    def _create(self, tx: Transaction, request: Request) -> Outcome:
        key = request.key
        if key is None:
            raise InvalidInput("candidate", None, f"{request.event} needs the candidate's identity")
        if request.idempotency_key is not None:
            prior = tx.transition_by_key(request.idempotency_key)
            if prior is not None:
                # The first answer, even after a withdraw released the slug: a
                # retried submit must not queue the work a second time.
                first = self.store.candidate_by_id(prior.candidate_id)
                if first is None or first.key != key or prior.event is not request.event:
                    raise IdempotencyKeyReused(
                        key, request.idempotency_key, request.event, prior.event
                    )
                return self._outcome(tx, first, prior)
        existing = tx.candidate(key.slug)
        if existing is not None and existing.key != key:
            if existing.state in self.table.active:
                raise DuplicateCandidate(key.slug, existing.key)
            existing = tx.find_candidate(key)
        if existing is not None and existing.state not in self.table.released:
            return Outcome(existing, None)
        at = self.clock()
        created = tx.insert_candidate(key, at)
        entry = self._now_entry(
            created,
            request.event,
            self.table.initial,
            idempotency_key=request.idempotency_key,
            actor=request.actor,
            request_digest=None if request.idempotency_key is None else request.digest(),
            at=at,
        )
        return Outcome(tx.append(created, entry), entry)

    def _payload_for(self, rule: Rule, request: Request) -> frozenset[Effect]:
        """The rule's effects, once the request is known to carry what they consume."""
        effects = rule.effects
        if Effect.TAKE_LEASE in effects and request.owner is None:
            raise InvalidInput("lease owner", None, f"{request.event} takes the lease")
        if Effect.RECORD_BLOCK in effects and request.report is None:
            raise InvalidInput("blocked report", None, f"{request.event} records a block")
        if request.new_sha is not None and Effect.SUPERSEDE_SHA not in effects:
            raise InvalidInput("new sha", request.new_sha, f"{request.event} keeps the sha")
        return effects

    def _same_request(
        self, candidate: Candidate, prior: Transition, request: Request, digest: str | None
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
        self, tx: Transaction, candidate: Candidate, request: Request, now: datetime
    ) -> None:
        held = tx.lease(self.lease_name)
        if held is not None:
            if self._joins(held, request.owner, now):
                # A link of the owner's chain: it runs under the lease already held.
                return
            raise LeaseHeld(self.lease_name, held.owner, held.expires_at.isoformat())
        assert request.owner is not None  # _payload_for checked it
        expires = now + (request.ttl or self.lease_ttl)
        tx.put_lease(Lease(self.lease_name, request.owner, candidate.id, now, expires))

    def _joins(self, held: Lease, owner: str | None, now: datetime) -> bool:
        """Whether a ``start_apply`` by ``owner`` joins ``held``: the owner's live chain lease."""
        return held.candidate_id is None and held.owner == owner and held.expires_at > now

    def _check_resolved(
        self, tx: Transaction, candidate: Candidate, request: Request, at: datetime
    ) -> None:
        record = tx.blocked_record(candidate.key)
        if record is None or request.force_reason is not None or self.resolver is None:
            return
        if record.reason is Reason.CONFIG_CHANGED:
            # An operator's approval of the sha settles it, not the follow-up todo.
            refused = approval_missing(self.store, record)
            if refused is not None:
                raise refused
        else:
            why = self.resolver.unresolved_reason(record)
            if why is not None:
                raise FollowUpNotResolved(candidate.key, record.follow_up_slug, why)
        mark = getattr(tx, "mark_resolved", None)  # a store that records the resolved time
        if mark is not None:
            mark(candidate.key, at)

    def _record_block(
        self,
        tx: Transaction,
        candidate: Candidate,
        entry: Transition,
        report: BlockedReport,
        explicit: str | None,
    ) -> None:
        key = candidate.key
        record = tx.blocked_record(key)
        if record is None:
            slug = explicit or self.follow_up_slug(key, tx.follow_up_owner)
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
        at = entry.at
        tx.record_block(
            key, report, seq=entry.seq, at=at, follow_up_slug=slug, previous_follow_up=previous
        )

    def _outcome(self, tx: Transaction, candidate: Candidate, entry: Transition) -> Outcome:
        blocked = None
        if candidate.state in self.table.carrying_blocked:
            blocked = tx.blocked_record(candidate.key)
        return Outcome(candidate, entry, blocked)

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
        request_digest: str | None = None,
        at: datetime | None = None,
    ) -> Transition:
        return Transition(
            candidate_id=candidate.id,
            seq=candidate.seq + 1,
            event=event,
            source=candidate.state if candidate.seq else None,
            dest=dest,
            sha=sha or candidate.key.sha,
            actor=actor or self.actor,
            at=at or self.clock(),
            reason=note,
            idempotency_key=idempotency_key,
            request_digest=request_digest,
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
        dest = self.table.destination(candidate.state, event)
        if dest is None:
            allowed = tuple(e.value for e in self.table.events_from(candidate.state))
            raise IllegalTransition(candidate.key, candidate.state, event, allowed)
        return dest


@attrs.define
class Batch(Calls):
    """The Engine's calls bound to one open transaction (see :meth:`Engine.batch`)."""

    engine: Engine
    tx: Transaction
    provisional: list[Outcome] = attrs.Factory(list)
    outcomes: list[Outcome] = attrs.Factory(list)

    def _current(self, slug: str) -> Candidate | None:
        return self.tx.candidate(slug)

    def _table(self) -> Table:
        return self.engine.table

    def fire(self, request: Request) -> Outcome:
        """Fire ``request`` in the batch's transaction; hooks run after the batch commits."""
        outcome = self.engine._fire(self.tx, request)
        self.provisional.append(outcome)
        return outcome
