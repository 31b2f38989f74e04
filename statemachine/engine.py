"""The Engine: the Python API an orchestrator drives.

Every call is one :class:`~.calls.Request`, fired through one path
(:mod:`._firing`): a store transaction that reads the candidate, looks up the
table's compiled step for the move, writes the log entry, and carries out what
the step's flags say (take or release the lease, record the block and enqueue
its follow-up, close the blocked record) together. Hooks and guidance run after
the commit, so nothing they do can tear a half-written move, and a hook that
fails is reported beside the outcome.

The Engine is the API; each idea behind it has its own module: firing
(``_firing``), the lease and its heartbeats (``_leases``), recovery
(``_recovery``) and driving an applier (``_driving``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import groupby

import attrs

from . import _driving, _leases, _recovery
from ._controls import apply_control
from ._firing import fast_move, fire_in
from ._fold import Violation, verify_log
from ._logfmt import log_outcome
from ._machine import LifecycleMachine, lifecycle
from ._validation import check_slug
from .applier import Applier
from .approval import approve
from .calls import Calls, Request
from .controls import Control, ControlEntry, QueueControls
from .errors import CandidateNotFound, LeaseHeld
from .followup_slug import SlugRule, follow_up_slug
from .hooks import HookLike, Subscription, run_hooks, subscriptions
from .ledger import Approval
from .move import Move, Moved
from .records import Candidate, Lease, Outcome
from .states import Event
from .store import Guide, Resolver, Store, Transaction
from .table import Table

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
        move = None if mover is None or not self.fast_path else fast_move(self, request)
        if move is not None:
            assert mover is not None
            moved = mover(move)
            if moved is not None:
                return self._after(Outcome(moved.candidate, moved.entry))
        # The general path reads the clock inside the transaction, once it holds
        # the candidate, so a call that waited for another writer is stamped
        # after that writer's move (a store declines a fast move for the same reason).
        with self.store.transaction() as tx:
            outcome = fire_in(self, tx, request)
        return self._after(outcome)

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

    # -- queue controls (see :mod:`.controls`) --------------------------------

    def pause(self, why: str, *, requeue: bool = False, actor: str | None = None) -> ControlEntry:
        """Pause the queue for every integrator of the store: nothing new starts.

        What is in flight finishes. ``requeue`` records that the operator wants
        it back in the queue (shown; ``mergegate run`` does not act on it yet).
        Raises InvalidInput
        (a blank ``why``) or ControlRefused (already paused), writing nothing.
        """
        return apply_control(self, Control.PAUSE, why=why, actor=actor, requeue=requeue)

    def unpause(self, why: str | None = None, *, actor: str | None = None) -> ControlEntry:
        """End the pause; raises ControlRefused if the queue is not paused."""
        return apply_control(self, Control.UNPAUSE, why=why, actor=actor)

    def drain(self, why: str, *, actor: str | None = None) -> ControlEntry:
        """Admit no new candidate; the queued ones go on. Raises ControlRefused if draining."""
        return apply_control(self, Control.DRAIN, why=why, actor=actor)

    def undrain(self, why: str | None = None, *, actor: str | None = None) -> ControlEntry:
        """Admit new candidates again; raises ControlRefused if the queue is not draining."""
        return apply_control(self, Control.UNDRAIN, why=why, actor=actor)

    def promote(self, slug: str, *, why: str, actor: str | None = None) -> ControlEntry:
        """Put queued candidate ``slug`` first: the next one any integrator takes.

        Raises CandidateNotFound, or ControlRefused when it is not queued
        (applying, blocked), writing nothing.
        """
        return apply_control(self, Control.PROMOTE, why=why, actor=actor, slug=slug)

    def controls(self) -> QueueControls:
        """The pause and the drain in force."""
        return self.store.queue_controls()

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
                else fire_in(self, tx, Request(Event.START_APPLY, slug, owner=owner))
            )
        return None if started is None else self._after(started)

    def _finish_apply(self, started: Outcome, applier: Applier, owner: str) -> Outcome:
        return _driving.finish_apply(self, started, applier, owner)

    # -- leases and recovery -------------------------------------------------

    def renew_lease(self, owner: str, ttl: timedelta | None = None) -> Lease:
        """Extend ``owner``'s integration lease; raises LeaseHeld(lost=True) if it was lost.

        Only a holder renews, so a lease found held by someone else was lost
        too: it expired while ``owner`` stood still (SIGSTOP, a swapped-out
        host) and another process recovered it and took it again. The store
        says "held by X" (it cannot know ``owner`` ever held it); here that is
        the same loss as a lease no row holds, so the caller says "lease lost"
        either way (``LeaseHeld.owner`` is then ``owner``, the one who lost it).
        """
        try:
            return self.store.renew_lease(
                self.lease_name, owner, self.clock() + (ttl or self.lease_ttl)
            )
        except LeaseHeld as err:
            if err.lost or err.owner == owner:
                raise
            raise LeaseHeld(self.lease_name, owner, None, lost=True, taken_by=err.owner) from err

    def hold_lease(self, owner: str, ttl: timedelta | None = None) -> Lease:
        """Take the integration lease for ``owner`` itself, for a speculative chain.

        The lease names no candidate; while it is live, each ``start_apply`` by
        ``owner`` joins it, so several candidates can be ``applying`` at once,
        each under this one lease (its start_apply entry names the owner).
        Raises LeaseHeld if the lease is held, even an expired one.
        """
        return _leases.hold_lease(self, owner, ttl)

    def release_lease(self, owner: str) -> bool:
        """Release ``owner``'s chain lease; say whether it still held it.

        Call it once no link of the chain is ``applying`` any more.
        """
        return _leases.release_lease(self, owner)

    def chain_links(self, lease: Lease) -> list[Candidate]:
        """The ``applying`` candidates that joined ``lease`` (a chain lease), oldest first."""
        return _leases.chain_links(self, lease)

    def interruption(
        self, candidate: Candidate, main_sha: str, lease: Lease, cause: str
    ) -> Request:
        """The move that settles ``candidate``'s apply, interrupted by its integrator for ``cause``.

        A ``requeue`` (logged with the cause; the candidate keeps its place, no
        follow-up), unless this is its :data:`MAX_INTERRUPTIONS`-th interruption
        in a row: then an ``interrupt`` that blocks it ``apply_interrupted``
        with the evidence of each (see ``interruptions.py``).
        """
        return _recovery.interruption(self, candidate, main_sha, lease, cause)

    def recover(
        self,
        main_sha: str,
        *,
        contains: Callable[[str], bool] | None = None,
        abandoned: Callable[[Lease], bool] | None = None,
        why: str | None = None,
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

        ``why`` settles each one with a plain ``requeue`` logged with ``why``
        instead: an integrator releasing its own applies for a cause that is not
        theirs (a busy host, a recall), which must not count toward
        ``apply_interrupted``.
        """
        return _recovery.recover(self, main_sha, contains, abandoned, why)


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
        outcome = fire_in(self.engine, self.tx, request)
        self.provisional.append(outcome)
        return outcome
