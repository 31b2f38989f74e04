"""How ``mergegate run`` is asked to let go of its work in flight: a stop signal, or a control.

A stop signal (SIGINT, SIGTERM, SIGHUP) is remembered always and raises
:class:`Interrupted` only where cutting short is safe: while a check runs or
while the loop waits. The run then requeues what it holds and exits.
SIGHUP (an ssh session or terminal that went away; the kernel also sends it,
with SIGCONT, to a stopped process group left without its parent) is a stop
like SIGTERM, not a silent death that leaves a worktree behind; a run started
under ``nohup`` (SIGHUP ignored) keeps ignoring it.

A control (``pause --requeue``, a promote; see :mod:`.controlwatch`) asks
the work in flight back without ending the run: a :class:`GiveBack` the
watcher thread hands in with :meth:`StopSignal.recall`. A speculative chain
takes it at its next safe point (``integrate_chain(recall=...)``); a serial
apply raises :class:`Recalled` in its check, and only there: the watcher
sends the main thread :data:`RECALL_SIGNAL`, whose handler raises only while
a check runs (as the stop signal's does), so a move of ``main`` is never cut.
A give-back that comes before the check raises as the check begins; one that
comes after it is dropped with the step (the candidate settled by itself).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import attrs

from mergegate.apply import GiveBack

__all__ = ["RECALL_SIGNAL", "STOP_SIGNALS", "Interrupted", "Recalled", "StopSignal"]

#: The signals that stop ``run`` at its next safe point (a hangup is a stop too).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: Sent by the control watcher to the main thread to cut a serial check short. SIGURG
#: is ignored by default, so this handler replaces no behaviour anyone relies on, and a
#: real signal (not ``_thread.interrupt_main``) also ends a sleep or a blocking wait.
RECALL_SIGNAL = signal.SIGURG


class Interrupted(BaseException):
    """A stop signal cut a check or a wait short. A BaseException, so no handler eats it."""


class Recalled(Interrupted):
    """A control asked the serial check in flight back: requeue it with ``give.why``, run on."""

    def __init__(self, give: GiveBack) -> None:
        super().__init__(give.why)
        self.give = give


@attrs.define
class StopSignal:
    """SIGINT, SIGTERM and SIGHUP: remembered always, raised only where cutting short is safe.

    Also the controls' give-backs (:meth:`recall`), which end no run.
    """

    requested: str | None = None
    #: Set with ``requested``: a chain polls it, from any thread, and stops itself.
    event: threading.Event = attrs.Factory(threading.Event)
    #: A give-back a control asked for and nobody took yet.
    recalled: GiveBack | None = None
    #: The slug of the serial apply in flight: a promotion of that one asks nothing back.
    current: str | None = None
    _interruptible: bool = False
    _in_check: bool = False
    # Re-entrant: the recall handler runs in the main thread, maybe while it holds the lock.
    _lock: threading.RLock = attrs.Factory(threading.RLock)
    _previous: dict[int, object] = attrs.Factory(dict)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = signal.Signals(signum).name
        self.event.set()
        if self._interruptible:
            self._interruptible = False
            raise Interrupted(self.requested)

    def _handle_recall(self, _signum: int, _frame: FrameType | None) -> None:
        if not self._in_check:
            return
        give = self._due()
        if give is not None:
            self._in_check = False
            raise Recalled(give)

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            if sig is signal.SIGHUP and signal.getsignal(sig) is signal.SIG_IGN:
                continue  # started under nohup: the person asked for hangups to be ignored
            self._previous[sig] = signal.signal(sig, self._handle)
        self._previous[RECALL_SIGNAL] = signal.signal(RECALL_SIGNAL, self._handle_recall)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def interruptible(self, on: bool) -> None:
        """Allow (or stop allowing) the signal to raise :class:`Interrupted` here."""
        if on and self.requested is not None:
            raise Interrupted(self.requested)
        self._interruptible = on

    @contextlib.contextmanager
    def cut_short(self) -> Iterator[None]:
        """A region (a sleep, a wait for the turn) that a stop signal may end at once."""
        self.interruptible(True)
        try:
            yield
        finally:
            self._interruptible = False

    def recall(self, give: GiveBack) -> None:
        """From any thread: ask the work in flight back. A serial check is cut at once.

        A pause's give-back is not replaced by a promotion's: it gives back more.
        """
        with self._lock:
            held = self.recalled
            if held is not None and held.first is None and give.first is not None:
                return
            self.recalled = give
        main = threading.main_thread().ident
        if self._previous and main is not None:
            signal.pthread_kill(main, RECALL_SIGNAL)

    def take_recall(self) -> GiveBack | None:
        """The give-back asked for, once (a chain's ``recall``); ``None`` if there is none."""
        with self._lock:
            give, self.recalled = self.recalled, None
        return give

    def _due(self) -> GiveBack | None:
        """The give-back to carry out now, taken; a promotion of the apply in flight is dropped."""
        with self._lock:
            give, self.recalled = self.recalled, None
        if give is not None and give.first is not None and give.first == self.current:
            return None
        return give

    def in_check(self, on: bool) -> None:
        """A serial check begins (or the step moves on): a due give-back raises here."""
        # Set first: a give-back handed in from now on is seen by the handler or below.
        self._in_check = on
        if on:
            give = self._due()
            if give is not None:
                self._in_check = False
                raise Recalled(give)
