"""The integrator loop behind ``mergegate run``: recover, claim, apply, wait, and again.

One process holds the queue, so Python's start-up and the store's connection
are paid once. The work on one candidate is :attr:`Loop.step`, a plain function
of the loop (``runsteps.py``: the default claims the oldest candidate and
applies it; a speculative chain drains the queue ``concurrency`` at a time).
Between steps the loop waits (``runwait.py``): for work, for the lease, for
its turn among the host's integrators, or while the queue is paused.

Signals: SIGINT, SIGTERM or SIGHUP while a check runs (or while waiting) cuts it
short, and the candidate is requeued at its place (``runsettle.py``); at any
other step the apply is finished first. Either way the loop then exits.

Controls: a ``pause --requeue``, or a promote of a queued candidate, that is
logged while a step is in flight asks its work back the same way (a watcher
thread on the store's control waiter hears it: ``controlwatch.py``): a
serial candidate in its check, or every link of a chain not yet settled, is
requeued at its place by a logged ``requeue`` naming the control, who and
why (never a move of ``main``; no follow-up; not an interruption that counts
toward a block). The loop does not exit: paused, it waits for the unpause; a
promotion, it takes the promoted candidate first. The signal and the
give-back share one mechanism (``stopsignal.py``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import attrs

from mergegate.apply import NothingPushed, RemoteUnreachable
from mergegate.statemachine import (
    Event,
    LeaseHeld,
    MergegateError,
    Outcome,
    RunSummary,
    State,
    on_event,
)

from .controlwatch import ControlWatch, newest_control
from .errors import ConfigBrokenInRun, ConfigError
from .pausewait import PauseWait
from .runsettle import Release, prune_check_refs, recover
from .runsteps import MAX_CONCURRENCY, Step, apply_next, chain_step
from .runwait import Waits
from .standby import Backoff, ordinary
from .stopsignal import Interrupted, Recalled, StopSignal
from .turn import TURN_WAIT, Turn

if TYPE_CHECKING:
    from mergegate.apply import GitApplier
    from mergegate.statemachine import Engine, Store

    from .progress import Reporter
    from .session import Session

#: The apply's steps a stop signal may cut short: everything before the move.
_CUT_SHORT = frozenset({"read", "merge", "check"})

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
    #: The apply's step in flight (``read``, ``merge``, ``check``, ``move``), for a stop's note.
    step_now: str = "check"
    _kept_at: float = 0.0
    _counted: set[tuple[int, int]] = attrs.Factory(set)
    _engine: Engine | None = None
    _pushed_nothing: bool = False
    #: The candidate this step printed as applying, to name it if its lease is lost.
    _applying: Outcome | None = None
    #: Holds the applier's scratch worktrees from one check to the next while it runs.
    _reuse: contextlib.ExitStack = attrs.Factory(contextlib.ExitStack)
    _waits: Waits = attrs.field(init=False)

    @_waits.default
    def _make_waits(self) -> Waits:
        return Waits(
            self.session, self.stop, self.poll, self.pause, self.reporter.note, self._recover
        )

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
        # A claim succeeded, so no pause is in force. An unpause committed after this
        # step read the controls (``_arm``) is said now, before "applying": said at the
        # next step, it came after the apply it allowed (a flake hunt's failure).
        resumed = self.pause.resumed()
        if resumed is not None:
            self._waits.note(resumed)
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
        # Up to the move a stop may cut the apply short: nothing is written before it
        # but objects no ref names, and a git that stalls (a stopped cat-file) held a
        # stop for its whole timeout. From the move on the apply must finish, or main
        # and the records would disagree. Only a check may be recalled by a control.
        self.step_now = step
        self.stop.interruptible(step in _CUT_SHORT)
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
                cursor = None if once else self._waits.cursor()
                try:
                    outcomes = self._next()
                except Recalled as recalled:
                    self._release(recalled.give.why, how="recall")
                    continue
                except Interrupted:
                    self._release(
                        f"mergegate run was stopped by {self.stop.requested} "
                        f"during its {self.step_now}",
                        how="stop",
                    )
                    break
                except MergegateError as err:
                    self._stand_by(err, once=once)  # raises err when it must end the run
                    continue
                self._stepped(outcomes, stepped)
                if outcomes is None:
                    self._waits.for_lease()
                    continue
                if not outcomes and self.stop.event.is_set():
                    # A chain stopped before any link settled requeued them all: the
                    # queue is not empty, the run is over.
                    break
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
        self._waits.say(self.pause.news(store, newest))
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
        self._waits.for_turn(turn, self.engine.lease_ttl.total_seconds())

    def _settle_leftovers(self) -> None:
        """At start: settle what a dead integrator left, in the store and on the remote."""
        self._recover()
        prune_check_refs(self.session, self.applier, self.reporter.note)

    def _idle(self, *, once: bool, idle_said: bool, cursor: int | None) -> bool | None:
        """The step found nothing to take: the queue is paused or empty. ``None`` ends the
        run (``once``); otherwise wait, and say whether "queue empty" has been said."""
        if self._waits.paused(once=once):
            return None if once else False
        if once:
            if not self.tally.handled:
                self.reporter.note("nothing to apply: no pending or retry candidate")
            return None
        if not idle_said:
            self.reporter.note("queue empty: waiting for candidates")
        self._waits.for_work(cursor)
        return True

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
        self._waits.sleep(wait)

    def _recover(self) -> None:
        """Settle what dead integrators left (``runsettle.py``), each counted."""
        recover(
            self.session, self.applier, self.owner, note=self.reporter.note, settled=self._recovered
        )

    def _recovered(self, outcome: Outcome) -> None:
        self.tally = attrs.evolve(self.tally, recovered=self.tally.recovered + 1)
        self.reporter.settled(outcome)

    def _release(self, cause: str, *, how: Literal["stop", "host", "recall"]) -> None:
        """Settle this integrator's own applies cut short (``runsettle.py``), each counted."""
        # The signal may have landed inside a store call: start from a fresh connection.
        self.session.close()
        self._engine = None
        release = Release(
            self.session,
            self.engine,
            self.applier,
            self.owner,
            self._released,
            self._pushed_nothing,
        )
        release(cause, how=how)

    def _released(self, outcome: Outcome) -> None:
        self.tally = attrs.evolve(self.tally, released=self.tally.released + 1)
        self.reporter.settled(outcome)
