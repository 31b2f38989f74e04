"""How ``mergegate run`` waits between steps: for work, for the lease, for its turn,
and while the queue is paused. Every wait is cut short by a stop signal, and
recovery runs after it, so an integrator that waits is still the host's recoverer.

Integrators on one host take turns through an ``flock`` on
``<git-common-dir>/mergegate/run.turn`` (``turn.py``): the holder keeps it while
the queue has work, and the others stand by instead of failing on the lease and
retrying. Standing by, an integrator still recovers every :data:`TURN_WAIT`
seconds (a dead holder is settled at once), and if the holder made no
progress for a whole lease TTL (it is stopped), it goes to the lease, the one
real mutex, by itself. Integrators on other hosts meet only at the lease; one
refused waits on the change feed (at most :data:`LEASE_WAIT`) and settles the
lease once it expires.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from mergegate.statemachine import ChangeFeed

from .pausewait import PauseWait
from .stopsignal import Interrupted, StopSignal
from .turn import TURN_WAIT, Turn

if TYPE_CHECKING:
    from .session import Session

__all__ = ["LEASE_WAIT", "Waits"]

#: The longest a run waits on the change feed while another integrator holds the lease.
LEASE_WAIT = 0.25


@attrs.define
class Waits:
    """The loop's waits; each ends early on a stop, then calls ``recover``."""

    session: Session
    stop: StopSignal
    #: The longest an idle wait lasts before recovery runs and the queue is read again.
    poll: float
    #: The pause this run announced (mergegate pause), so it is said once.
    pause: PauseWait
    #: Says one line on the run's progress output.
    note: Callable[[str], None]
    #: Settles what a dead integrator left (the loop's recovery).
    recover: Callable[[], None]
    #: Said since this run last had the turn: "standing by", and passing a stalled
    #: holder. A run that goes on to the lease comes back here each step, and the
    #: operator is told once, not every two seconds.
    _stood_by: bool = attrs.field(default=False, init=False)
    _passed: bool = attrs.field(default=False, init=False)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if a stop signal comes."""
        try:
            with self.stop.cut_short():
                time.sleep(seconds)
        except Interrupted:
            return

    def feed(self) -> ChangeFeed | None:
        """The store's change feed, or ``None`` for a store without one (it is polled)."""
        store = self.session.store()
        return store if isinstance(store, ChangeFeed) else None

    def cursor(self) -> int | None:
        """The change feed's head now, to wait for a change after it; ``None`` without a feed."""
        feed = self.feed()
        return None if feed is None else feed.feed_head()

    def for_turn(self, turn: Turn, ttl: float) -> None:
        """Stand by until this integrator has the turn (or its holder made no progress).

        Says so once when the turn does not come within ``TURN_WAIT``: an operator
        who started a second ``run`` beside a stopped one saw nothing at all. Each
        line is said once until this run has the turn again.
        """
        while True:
            with self.stop.cut_short():
                if turn.take(TURN_WAIT):
                    self._stood_by = self._passed = False
                    return
            if not self._stood_by:
                self.note(
                    "standing by: another integrator on this host has the turn "
                    f"(its last progress {turn.idle_for():.0f}s ago)"
                )
                self._stood_by = True
            # Standing by, but still the host's recoverer: a dead holder is settled at once.
            self.recover()
            idle = turn.idle_for()
            if idle > ttl:
                # A holder stopped for a whole TTL must not stall the queue: go to the lease.
                if not self._passed:
                    self.note(
                        # Said of a holder in a long check too, which is well: the turn
                        # counts finished candidates, the lease (renewed or not) decides.
                        f"the turn's holder has finished no candidate for {idle:.0f}s, longer "
                        f"than the lease TTL ({ttl:g}s): going on to the lease without the turn"
                    )
                    self._passed = True
                return

    def for_work(self, cursor: int | None) -> None:
        """The queue is empty: wait for the next change to the log, at most ``poll``,
        then settle what a dead integrator left.

        The change feed wakes the loop on a commit (LISTEN/NOTIFY on PostgreSQL,
        SQLite's data_version), so a submit starts at once instead of at the next
        poll; ``poll`` still bounds the wait, for recovery and for branches that
        developers push to a remote, which the log does not see.
        """
        feed = self.feed()
        if cursor is None or feed is None:
            self.sleep(self.poll)
        else:
            with contextlib.suppress(Interrupted), self.stop.cut_short():
                feed.wait_for_change(cursor, self.poll)
        self.recover()

    def paused(self, *, once: bool) -> bool:
        """The queue is paused: say so once and (unless ``once``) wait for a control.

        An unpause is said as soon as the wait sees it, before the run applies
        anything; so are a drain and its end.
        """
        store = self.session.store()
        controls = store.queue_controls()
        self.say(self.pause.changes(controls))
        entry = controls.paused
        if entry is None:
            return False
        line = self.pause.note(entry)
        if line is not None:
            self.note(line)
        if not once:
            with contextlib.suppress(Interrupted), self.stop.cut_short():
                self.pause.wait(store, entry, self.poll)
            self.recover()
            self.say(self.pause.changes(store.queue_controls()))
        return True

    def say(self, lines: Sequence[str]) -> None:
        """Say each of ``lines``."""
        for line in lines:
            self.note(line)

    def for_lease(self) -> None:
        """Another integrator holds the lease: wait for the log to move, settle it if dead.

        Its holder's every move (and every submit) wakes the wait on the change
        feed; ``LEASE_WAIT`` bounds it for a release that writes no entry (a
        chain that drained the queue). It used to sleep 5 ms and settle again:
        some 200 reads a second from an integrator standing by.
        """
        feed = self.feed()
        if feed is None:
            self.sleep(LEASE_WAIT)
        else:
            cursor = feed.feed_head()
            with contextlib.suppress(Interrupted), self.stop.cut_short():
                feed.wait_for_change(cursor, LEASE_WAIT)
        self.recover()
