"""How ``mergegate run`` hears a control while it applies: a watcher thread on the control waiter.

While a step is in flight (a serial apply, or a speculative chain that may run
for hours) the loop's thread is busy, in a check or in the chain's waits. A
thread of its own (:class:`ControlWatch`) waits meanwhile for a new queue
control with the store's control waiter (``wait_for_control``: PostgreSQL's
LISTEN/NOTIFY, so a pause typed against the shared store from any host
reaches every integrator; SQLite's data version, a read of shared memory).
It reads the store only when a control was logged, and turns two of them
into a :class:`~mergegate.apply.GiveBack` handed to the run's
:class:`~.stopsignal.StopSignal`:

- a ``pause --requeue``: every unsettled link (or the serial candidate in its
  check) is requeued with a reason naming the pause, who and why;
- a ``promote`` of a candidate still queued: the same, naming the promotion,
  and the chain is rebuilt with that candidate first.

Why a thread on the waiter and not a read in the check's tick: the tick of a
serial check is the lease's heartbeat, every ``heartbeat_every`` seconds (30
by default), far too late, and a read every half second in each of N link
threads would be N reads a second for an event that happens a few times a
month. The waiter costs one idle connection and wakes on the control's commit.
Between steps the thread is disarmed and touches nothing: the loop's own idle
and pause waits see the controls then, and the claim honours them.

Each step arms the watch with the newest control's id, read before its claim:
a control logged before that is the claim's business (it finds no head while
paused, and takes a promoted candidate first), and a give-back left from an
earlier step is dropped. A store without a control waiter is read every
:data:`SLICE` seconds instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from mergegate.apply import GiveBack
from mergegate.followups.text import one_line
from mergegate.statemachine import TABLE, Control, ControlEntry

from .pausewait import ControlWaiter

if TYPE_CHECKING:
    from mergegate.statemachine import Store

    from .stopsignal import StopSignal

__all__ = ["SLICE", "ControlWatch", "give_back", "newest_control"]

#: The longest single wait: how soon the thread sees that it was disarmed or closed,
#: and how often a store without a control waiter is read.
SLICE = 0.5


def newest_control(store: Store) -> int:
    """The id of the newest control logged, ``0`` if none: what a step is armed with."""
    newest = store.control_log(limit=1)
    return newest[-1].id if newest else 0


def give_back(store: Store, new: Sequence[ControlEntry]) -> GiveBack | None:
    """What the controls ``new`` (just logged) ask of the work in flight, if anything."""
    paused = store.queue_controls().paused
    if paused is not None and paused.requeue and any(e.id == paused.id for e in new):
        why = "" if paused.why is None else f": {one_line(paused.why)}"
        return GiveBack(f"requeued: queue paused with --requeue by {one_line(paused.actor)}{why}")
    promoted = next((e for e in reversed(new) if e.action is Control.PROMOTE), None)
    if promoted is None or promoted.slug is None:
        return None
    candidate = store.candidate(promoted.slug)
    if candidate is None or candidate.state not in TABLE.queued:
        return None  # already taken (and maybe settled): nothing to put first
    why = "" if promoted.why is None else f": {one_line(promoted.why)}"
    return GiveBack(
        f"requeued: rebuilt behind {promoted.slug}, promoted by {one_line(promoted.actor)}{why}",
        first=promoted.slug,
    )


@attrs.define(eq=False)
class ControlWatch:
    """The watcher thread: armed while a step runs, it hands a :class:`GiveBack` to ``stop``."""

    #: Opens the thread's own store (its connection and waiter are the thread's).
    open_store: Callable[[], Store]
    stop: StopSignal
    _lock: threading.Lock = attrs.Factory(threading.Lock)
    _armed: threading.Event = attrs.Factory(threading.Event)
    #: Bumped by every arm, disarm and close: a wait of an older step hands nothing in.
    _generation: int = 0
    _after: int = 0
    _closing: bool = False
    _thread: threading.Thread | None = None

    def arm(self, after: int) -> None:
        """A step begins: a control logged after id ``after`` may ask its work back."""
        with self._lock:
            self._generation += 1
            self._after = after
            self.stop.take_recall()  # one left from an earlier step is not this step's
            self._armed.set()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="mergegate-control-watch", daemon=True
            )
            self._thread.start()

    def disarm(self) -> None:
        """The step is over: nothing is in flight to give back."""
        with self._lock:
            self._generation += 1
            self._armed.clear()

    def close(self) -> None:
        """Have the thread stop and close its store, without waiting for it.

        The thread may be inside a store wait of up to :data:`SLICE` seconds; it
        returns from it, sees the close and closes its own store (a connection
        is its thread's). Waiting for that here would add up to half a second
        to every ``run --once``, for nothing: the thread is a daemon and its
        store only reads.
        """
        with self._lock:
            self._closing = True
            self._generation += 1
            self._armed.set()

    def _run(self) -> None:
        store: Store | None = None
        try:
            while True:
                self._armed.wait()
                with self._lock:
                    if self._closing:
                        return
                    generation, after = self._generation, self._after
                try:
                    if store is None:
                        store = self.open_store()
                    self._watch(store, generation, after)
                except Exception:  # the store is unreachable for a moment: retry
                    if store is not None:
                        store.close()
                    store = None
                    time.sleep(SLICE)
        finally:
            if store is not None:
                store.close()

    def _current(self, generation: int) -> bool:
        with self._lock:
            return self._generation == generation

    def _watch(self, store: Store, generation: int, after: int) -> None:
        """Wait for controls after ``after`` while the step armed as ``generation`` runs."""
        while self._current(generation):
            if isinstance(store, ControlWaiter):
                if not store.wait_for_control(after, SLICE):
                    continue
            else:
                time.sleep(SLICE)
            new = [e for e in store.control_log(limit=20) if e.id > after]
            if not new:
                continue
            after = new[-1].id
            give = give_back(store, new)
            with self._lock:
                if self._generation != generation:
                    return
                self._after = after
                if give is not None:
                    self.stop.recall(give)
