"""The integrator loop behind ``mergegate run``: recover, claim, apply, wait, and again.

One process holds the queue, so Python's start-up and the store's connection
are paid once. The work on one candidate is :attr:`Loop.step`, a plain function
of the loop (the default claims the oldest candidate and applies it), so a
step that handles several candidates at once (a speculative chain) can replace
it without touching the loop.

Integrators on one host take turns through an ``flock`` on
``<git-common-dir>/mergegate/run.turn``: the holder keeps it while the queue
has work, and the others stand by instead of failing on the lease and
retrying. Standing by, an integrator still recovers every :data:`TURN_WAIT`
seconds (a dead holder is settled at once), and if the holder made no
progress for a whole lease TTL (it is stopped), it goes to the lease, the one
real mutex, by itself. Integrators on other hosts meet only at the lease; one
refused waits a few milliseconds and settles the lease once it expires.

Signals: SIGINT, SIGTERM or SIGHUP while a check runs (or while waiting) cuts it short,
and the candidate is requeued at its place by a logged ``requeue`` naming the
signal (no follow-up: the stop is not its fault; see
``mergegate.statemachine._interruptions``); at any other step the apply is
finished first. Either way the loop then exits.

Controls: a ``pause --requeue``, or a promote of a queued candidate, that is
logged while a step is in flight asks its work back the same way (a watcher
thread on the store's control waiter hears it: ``controlwatch.py``): a
serial candidate in its check, or every link of a chain not yet settled, is
requeued at its place by a logged ``requeue`` naming the control, who and
why (never a move of ``main``; no follow-up; not an interruption that counts
toward a block). The loop does not exit: paused, it waits for the unpause; a
promotion, it takes the promoted candidate first. The signal and the
give-back share one mechanism (``stopsignal.py``).

With ``concurrency`` above 1 the step is :func:`chain_step`: the queue is
drained by :func:`mergegate.apply.integrate_chain`, that many candidates
tested at once. A stop signal then only sets an event the chain polls: it kills
the running checks, never interrupts a move, requeues every link not yet
settled and releases the chain lease. Outcomes are counted and shown as each
link settles (engine hooks), not when the whole chain returns.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import attrs

from mergegate.apply import NothingPushed, RemoteUnreachable, RepositoryBusy
from mergegate.statemachine import (
    ChangeFeed,
    Event,
    LeaseHeld,
    MergegateError,
    MoveInFlight,
    Outcome,
    RunSummary,
    State,
    on_event,
)

from .cirunner import prune_stale_check_refs
from .controlwatch import ControlWatch, newest_control
from .errors import ConfigBrokenInRun, ConfigError
from .pausewait import PauseWait
from .recovery import recover_now
from .standby import Backoff, ordinary
from .stopsignal import Interrupted, Recalled, StopSignal
from .turn import TURN_WAIT, Turn

if TYPE_CHECKING:
    from mergegate.apply import GitApplier
    from mergegate.statemachine import Engine, Store

    from .progress import Reporter
    from .session import Session

__all__ = [
    "MAX_CONCURRENCY",
    "TURN_WAIT",
    "Interrupted",
    "Loop",
    "StopSignal",
    "Turn",
    "apply_next",
    "chain_step",
]

#: The longest a run waits on the change feed while another integrator holds the lease.
LEASE_WAIT = 0.25

#: The most candidates ``run --concurrency`` tests at once: each is a worktree
#: and a check process of its own, and past a few the chain rarely gets that long
#: before a failure throws its tail away.
MAX_CONCURRENCY = 32

#: One step of the loop: handle the next candidate(s) and return their outcomes;
#: empty when the queue is empty. It may raise LeaseHeld (another integrator holds
#: the lease): the loop then waits and tries again.
Step = Callable[["Loop"], Sequence[Outcome]]


def apply_next(loop: Loop) -> Sequence[Outcome]:
    """The default step: claim the oldest pending or retry candidate and apply it."""
    outcome = loop.engine.apply_next(loop.applier, owner=loop.owner)
    return () if outcome is None else (outcome,)


def chain_step(loop: Loop) -> Sequence[Outcome]:
    """Drain the queue as speculative chains of ``loop.concurrency`` links; see the module."""
    # Imported here: the serial loop never pays for the chain's thread pool.
    from mergegate.apply import integrate_chain  # noqa: PLC0415

    loop.chaining = True
    try:
        run = integrate_chain(
            loop.engine,
            loop.applier,
            owner=loop.owner,
            concurrency=loop.concurrency,
            stop=loop.stop.event,
            recall=loop.stop.take_recall,
        )
    finally:
        loop.chaining = False
    if run.stopped:
        loop.tally = attrs.evolve(loop.tally, released=loop.tally.released + len(run.stopped))
    return [o for o in run.outcomes if o.candidate.state in (State.INTEGRATED, State.BLOCKED)]


@attrs.define
class Loop:
    """Drains the queue through :attr:`step`; see the module docstring."""

    session: Session
    applier: GitApplier
    owner: str
    reporter: Reporter
    step: Step = apply_next
    poll: float = 1.0
    stop: StopSignal = attrs.Factory(StopSignal)
    turn: Turn | None = None
    tally: RunSummary = attrs.Factory(RunSummary)
    #: Candidates tested at once; above 1, ``step`` should be :func:`chain_step`.
    concurrency: int = 1
    #: True while a chain runs: its links' settling moves are counted as they commit.
    chaining: bool = False
    backoff: Backoff = attrs.Factory(Backoff)
    #: The pause this run announced (mergegate pause), so it is said once.
    pause: PauseWait = attrs.Factory(PauseWait)
    #: Hears a control while a step is in flight (made by :meth:`run`).
    watch: ControlWatch | None = None
    _kept_at: float = 0.0
    _counted: set[tuple[int, int]] = attrs.Factory(set)
    _engine: Engine | None = None
    _pushed_nothing: bool = False
    #: The candidate this step printed as applying, to name it if its lease is lost.
    _applying: Outcome | None = None
    #: Holds the applier's scratch worktrees from one check to the next while it runs.
    _reuse: contextlib.ExitStack = attrs.Factory(contextlib.ExitStack)

    @property
    def engine(self) -> Engine:
        """The session's Engine, with the reporter subscribed to ``start_apply``."""
        if self._engine is None:
            engine = self.session.engine()
            engine.hooks = [
                *engine.hooks,
                on_event(Event.START_APPLY, self._started),
                on_event(Event.INTEGRATE, self._link_moved),
                on_event(Event.BLOCK, self._link_moved),
                on_event(Event.REQUEUE, self._link_moved),
            ]
            # The heartbeat writes only once a third of the TTL is gone (the
            # Engine's default, kept in step with a lease_ttl set after it was built).
            engine.renew_after = engine.lease_ttl / 3
            self._engine = engine
        return self._engine

    def _started(self, outcome: Outcome) -> None:
        self._applying = outcome
        if not self.chaining:
            self.stop.current = outcome.candidate.key.slug
        self.reporter.started(outcome)

    def _link_moved(self, outcome: Outcome) -> None:
        """A chain's link settled or was requeued: count and show it now, not at the end."""
        if not self.chaining:
            return
        if self.turn is not None and self.turn.held:
            # A chain drains the whole queue in one step: show the host's
            # standing-by integrators it is making progress, link by link.
            self.turn.touch()
        if outcome.candidate.state is State.PENDING:
            self.reporter.settled(outcome)
        else:
            self._count(outcome)

    def _count(self, outcome: Outcome) -> None:
        """Count and show a settled outcome once, however many times it is handed in."""
        key = (outcome.candidate.id, outcome.candidate.seq)
        if key in self._counted:
            return
        self._counted.add(key)
        self.tally = self.tally.counted(outcome, keep=False)
        self.reporter.settled(outcome)

    def _take_new_config(self) -> None:
        """Check the next candidates by the configuration now in force (an approved change)."""
        old, self.applier = self.applier, self.session.applier(checkout_waits=True)
        self.applier.on_step = self._on_step
        self._reuse.close()
        self._reuse.enter_context(self.applier.reusing_worktrees())
        old.close()
        self._engine = None
        where = self.session.config().source or "the defaults"
        self.reporter.note(f"configuration changed: the next candidates are checked by {where}")

    def _on_step(self, step: str, detail: str | None) -> None:
        if self.chaining:
            # Steps come from the links' threads and name no candidate; the
            # chain stops through ``stop.event``, never by a raise in this thread.
            return
        self.reporter.step(step, detail)
        # Only a check may be cut short: before it nothing is slow, and from the
        # move on the apply must finish, or main and the records would disagree.
        self.stop.interruptible(step == "check")
        self.stop.in_check(step == "check")

    def run(self, *, once: bool) -> RunSummary:
        """Drain the queue (and with ``once``, return); otherwise wait for more until stopped."""
        began = time.monotonic()
        self.session.keepalive = self._keep_alive
        self.applier.on_step = self._on_step
        self.stop.install()
        watch = self.watch = ControlWatch(self._watch_store, self.stop)
        try:
            self.applier.cleanup_stale()
            self._reuse.enter_context(self.applier.reusing_worktrees())
            self._settle_leftovers()
            idle_said = False
            while self.stop.requested is None:
                stepped = time.monotonic()
                # Read before the step: a submit that lands after the step found the
                # queue empty is then after this cursor, and wakes the wait below.
                cursor = None if once else self._cursor()
                try:
                    outcomes = self._next()
                except Recalled as recalled:
                    self._release(recalled.give.why, how="recall")
                    continue
                except Interrupted:
                    self._release(
                        f"mergegate run was stopped by {self.stop.requested} during its check",
                        how="stop",
                    )
                    break
                except MergegateError as err:
                    self._stand_by(err, once=once)  # raises err when it must end the run
                    continue
                self._stepped(outcomes, stepped)
                if outcomes is None:
                    self._wait_for_lease()
                    continue
                if not outcomes:
                    said = self._idle(once=once, idle_said=idle_said, cursor=cursor)
                    if said is None:
                        break
                    idle_said = said
                    continue
                idle_said = False
                for outcome in outcomes:
                    self._count(outcome)
                self._recover()
            if self.stop.requested is not None:
                self.reporter.note(f"stopped by {self.stop.requested}")
        finally:
            self._close(watch)
        self.tally = attrs.evolve(self.tally, seconds=time.monotonic() - began)
        return self.tally

    def _close(self, watch: ControlWatch) -> None:
        """The run ends: its watcher, signal handlers, worktrees, turn and reporter."""
        watch.close()
        self.stop.uninstall()
        self._reuse.close()
        self.applier.on_step = None
        if self.turn is not None:
            self.turn.close()
        self.reporter.close()

    def _next(self) -> Sequence[Outcome] | None:
        """The step's outcomes; ``None`` when another integrator holds the lease."""
        self._wait_for_turn()
        outcomes = None
        self._forget_applying()
        # With a remote: fetch what developers pushed and follow an outside push of main.
        self.applier.sync()
        # A person at work in main's checked-out work tree: wait before taking anything.
        self.applier.check_ready()
        try:
            changed = self.session.reload_config()
        except ConfigError as err:
            raise ConfigBrokenInRun(err) from err
        if changed:
            self._take_new_config()
        try:
            self._arm()
            outcomes = self.step(self)
        except LeaseHeld as err:
            if err.lost and self._applying is not None:
                # Our own apply's lease was taken over while this process was stopped:
                # the candidate printed as applying must not end without a word.
                key = self._applying.candidate.key
                self.reporter.note(
                    f"{key.slug} {key.sha[:12]}: lease lost (another process recovered it "
                    f"after it expired); `mergegate show {key.slug}` says how it was settled"
                )
            return None
        finally:
            if self.watch is not None:
                self.watch.disarm()
            self.stop.interruptible(False)
            self.stop.in_check(False)
            if self.turn is not None:
                if outcomes:
                    self.turn.touch()
                else:
                    # Nothing to do here (or the lease is elsewhere): let a waiter look.
                    self.turn.give()
        return outcomes

    def _forget_applying(self) -> None:
        # A method, not an assignment in _next: the start hook sets ``_applying``
        # during the step, which a type checker narrowing the attribute cannot see.
        self._applying = None
        self.stop.current = None

    def _arm(self) -> None:
        """Have the control watcher hear controls logged from now on, until the step ends.

        Read before the claim: a control logged earlier is the claim's business.
        A control logged since the last step (an unpause, a drain) is said here.
        """
        store = self.session.store()
        newest = newest_control(store)
        # A control logged since the last look (an unpause, a drain) is said before the claim.
        self._say(self.pause.news(store, newest))
        if self.watch is not None:
            self.watch.arm(newest)

    def _watch_store(self) -> Store:
        """The control watcher's own store (its thread's connection and waiter)."""
        from mergegate.persistence import open_store  # noqa: PLC0415

        return open_store(self.session.db_target())

    def _wait_for_turn(self) -> None:
        """Stand by until this integrator has the turn (or its holder made no progress)."""
        turn = self.turn
        if turn is None or turn.held:
            return
        ttl = self.engine.lease_ttl.total_seconds()
        while True:
            with self.stop.cut_short():
                if turn.take(TURN_WAIT):
                    return
            # Standing by, but still the host's recoverer: a dead holder is settled at once.
            self._recover()
            if turn.idle_for() > ttl:
                # A holder stopped for a whole TTL must not stall the queue: go to the lease.
                return

    def _settle_leftovers(self) -> None:
        """At start: settle what a dead integrator left, in the store and on the remote."""
        self._recover()
        self._prune_check_refs()

    def _prune_check_refs(self) -> None:
        """Delete the check refs a killed integrator left on the remote (cirunner.py)."""
        try:
            gone = prune_stale_check_refs(self.session.config(), self.applier, self.session.store())
        except MergegateError as err:
            # The remote may be down for a moment; the refs only cost space until next time.
            self.reporter.note(f"stale check refs not pruned: {err}")
            return
        if gone:
            self.reporter.note(f"pruned {len(gone)} stale check refs ({gone[0]}, ...)")

    def _sleep(self, seconds: float) -> None:
        try:
            with self.stop.cut_short():
                time.sleep(seconds)
        except Interrupted:
            return

    def _feed(self) -> ChangeFeed | None:
        """The store's change feed, or ``None`` for a store without one (it is polled)."""
        store = self.session.store()
        return store if isinstance(store, ChangeFeed) else None

    def _cursor(self) -> int | None:
        feed = self._feed()
        return None if feed is None else feed.feed_head()

    def _wait_for_work(self, cursor: int | None) -> None:
        """The queue is empty: wait for the next change to the log, at most ``poll``,
        then settle what a dead integrator left.

        The change feed wakes the loop on a commit (LISTEN/NOTIFY on PostgreSQL,
        SQLite's data_version), so a submit starts at once instead of at the next
        poll; ``poll`` still bounds the wait, for recovery and for branches that
        developers push to a remote, which the log does not see.
        """
        feed = self._feed()
        if cursor is None or feed is None:
            self._sleep(self.poll)
        else:
            with contextlib.suppress(Interrupted), self.stop.cut_short():
                feed.wait_for_change(cursor, self.poll)
        self._recover()

    def _idle(self, *, once: bool, idle_said: bool, cursor: int | None) -> bool | None:
        """The step found nothing to take: the queue is paused or empty. ``None`` ends the
        run (``once``); otherwise wait, and say whether "queue empty" has been said."""
        if self._paused(once=once):
            return None if once else False
        if once:
            if not self.tally.handled:
                self.reporter.note("nothing to apply: no pending or retry candidate")
            return None
        if not idle_said:
            self.reporter.note("queue empty: waiting for candidates")
        self._wait_for_work(cursor)
        return True

    def _paused(self, *, once: bool) -> bool:
        """The queue is paused: say so once and (unless ``once``) wait for a control.

        An unpause is said as soon as the wait sees it, before the run applies
        anything; so are a drain and its end.
        """
        store = self.session.store()
        controls = store.queue_controls()
        self._say(self.pause.changes(controls))
        entry = controls.paused
        if entry is None:
            return False
        line = self.pause.note(entry)
        if line is not None:
            self.reporter.note(line)
        if not once:
            with contextlib.suppress(Interrupted), self.stop.cut_short():
                self.pause.wait(store, entry, self.poll)
            self._recover()
            self._say(self.pause.changes(store.queue_controls()))
        return True

    def _say(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.reporter.note(line)

    def _wait_for_lease(self) -> None:
        """Another integrator holds the lease: wait for the log to move, settle it if dead.

        Its holder's every move (and every submit) wakes the wait on the change
        feed; ``LEASE_WAIT`` bounds it for a release that writes no entry (a
        chain that drained the queue). It used to sleep 5 ms and settle again:
        some 200 reads a second from an integrator standing by.
        """
        feed = self._feed()
        if feed is None:
            self._sleep(LEASE_WAIT)
        else:
            cursor = feed.feed_head()
            with contextlib.suppress(Interrupted), self.stop.cut_short():
                feed.wait_for_change(cursor, LEASE_WAIT)
        self._recover()

    def _keep_alive(self) -> None:
        """A notification is running: renew this integrator's (chain) lease if it holds one.

        A write at most every third of the TTL. A lease it does not hold (a
        serial apply releases its lease with the move) has nothing to keep.
        """
        now = time.monotonic()
        if now - self._kept_at < self.engine.lease_ttl.total_seconds() / 3:
            return
        self._kept_at = now
        with contextlib.suppress(LeaseHeld):
            self.engine.renew_lease(self.owner)

    def _stepped(self, outcomes: Sequence[Outcome] | None, since: float) -> None:
        """A step went through: the backoff starts short again; time with outcomes was busy."""
        self.backoff.reset()
        if outcomes:
            self.tally = attrs.evolve(self.tally, busy=self.tally.busy + time.monotonic() - since)

    def _stand_by(self, err: MergegateError, *, once: bool) -> None:
        """An ordinary event stopped the step: requeue what it held, say so, wait, go on.

        Anything else ends the run: ``err`` is raised again. So does a remote
        that does not answer under ``--once``, a one-shot drain that should not
        wait for a server for hours; the daemon waits for it.
        """
        if not ordinary(err):
            raise err
        # A remote that could not be read before the push (NothingPushed) leaves
        # nothing that can land: the apply goes back to the queue even though the
        # remote cannot be asked, instead of waiting applying for its lease to expire.
        self._pushed_nothing = isinstance(err, NothingPushed)
        try:
            self._release(str(err), how="host")
        except MergegateError as again:
            if not ordinary(again):
                raise
        if once and isinstance(err, RemoteUnreachable):
            raise err
        wait = self.backoff.next_wait(err)
        line = self.backoff.line(err, wait)
        if line is not None:
            self.reporter.note(line)
        self._sleep(wait)

    def _recover(self) -> None:
        try:
            main = self.applier.main_sha()
            # As the integrator that carries on, it says so after a dead one's work is settled.
            recovered = recover_now(self.session, main, self.applier, serving=self.owner)
        except MoveInFlight:
            # A live mover holds main: it is working, not dead; nothing to settle.
            return
        except MergegateError as err:
            # main not born yet, a lock held, the store busy: recovery runs again soon.
            if not ordinary(err):
                raise
            return
        if recovered.stale_lock is not None:
            self.reporter.note(f"removed stale lock {recovered.stale_lock} of a dead mover")
        for outcome in recovered.outcomes:
            self.tally = attrs.evolve(self.tally, recovered=self.tally.recovered + 1)
            self.reporter.settled(outcome)

    def _release(self, cause: str, *, how: Literal["stop", "host", "recall"]) -> None:
        """Settle this integrator's own applies, cut short by a stop signal, a host event
        or a control that asked them back.

        Each is requeued with ``cause`` logged. A stop is an interruption that
        counts toward blocking a candidate that keeps stopping its integrator
        (``Engine.interruption``); a held lock or a busy store (``host``) is
        plainly the host's and never does; nor does a ``recall``, the
        operator's choice, logged as ``cause`` says (it names the control).
        """
        # The signal may have landed inside a store call: start from a fresh connection.
        self.session.close()
        self._engine = None
        engine = self.engine
        mine = [lease for lease in self.session.store().leases() if lease.owner == self.owner]
        for lease in mine:
            if lease.candidate_id is None:
                self._release_chain(engine)
                continue
            candidate = self.session.store().candidate_by_id(lease.candidate_id)
            if candidate is None:
                continue
            with contextlib.ExitStack() as stack:
                main = self._main_for_release(stack)
                if self.applier.contains(candidate.key.sha, main):
                    outcome = engine.integrate(
                        candidate.key.slug, main_sha=main, expected_seq=candidate.seq
                    )
                elif how == "stop":
                    # Stopped by its operator: not the candidate's fault. It is
                    # requeued at its place, with no follow-up (interruptions.py).
                    outcome = engine.fire(engine.interruption(candidate, main, lease, cause))
                elif how == "recall":
                    outcome = engine.requeue(
                        candidate.key.slug, why=cause, expected_seq=candidate.seq
                    )
                else:
                    outcome = engine.requeue(
                        candidate.key.slug,
                        why=f"the host was busy: {cause}",
                        expected_seq=candidate.seq,
                    )
            self.tally = attrs.evolve(self.tally, released=self.tally.released + 1)
            self.reporter.settled(outcome)

    def _main_for_release(self, stack: contextlib.ExitStack) -> str:
        """main's sha, held under git's lock on it unless another process holds that lock.

        Only this integrator moves a candidate applying under its lease, and
        it is not moving one now: a read of main is as good as a held one
        here, so a held ``main.lock`` (what this release may be for) is no
        reason to leave the candidate applying.
        """
        try:
            return stack.enter_context(self.applier.hold_main()).main_sha
        except (RepositoryBusy, MoveInFlight):
            return self.applier.main_sha()
        except RemoteUnreachable:
            if not self._pushed_nothing:
                raise
            # Releasing an apply that pushed nothing (``_stand_by``): the remote's
            # main cannot hold it, and the local main is the one it was built on.
            return self.applier.main_sha()

    def _release_chain(self, engine: Engine) -> None:
        """Settle a chain the stop left under this integrator's lease: each link requeued.

        Only reached if the chain raised on its way out; a chain that saw the
        stop requeued its links itself. A link ``main`` already has is integrated.
        """
        with self.applier.hold_main() as held:
            outcomes = engine.recover(
                held.main_sha,
                contains=lambda sha: self.applier.contains(sha, held.main_sha),
                abandoned=lambda lease: lease.owner == self.owner,
            )
        for outcome in outcomes:
            self.tally = attrs.evolve(self.tally, released=self.tally.released + 1)
            self.reporter.settled(outcome)
