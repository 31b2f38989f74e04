"""What ``run`` waits out instead of exiting: the ordinary events of a shared host.

A person withdraws or supersedes a candidate the integrator was about to
move (a conflict on its own link), another integrator holds the lease, the
SQLite store stays locked past its busy timeout behind a stopped writer, a
person's ``git status`` holds ``index.lock`` or another process holds git's
``main.lock``. None of these is a fault of the integrator or of a candidate:
``run`` requeues what it was applying (logged, with the cause), stands by
with a growing delay (:class:`Backoff`), says on its progress line what it
waits for, and tries again.

Only what waiting cannot mend ends it: a broken configuration (exit 2, at
start-up, before anything moves), git missing or the repository gone (exit 1),
or a store that stays unusable for :data:`STORE_PATIENCE` seconds for any
reason but a busy lock (``StoreLost``, exit 5). Each ends with one line.
"""

from __future__ import annotations

import time

import attrs

from mergegate.apply import CheckoutInUse, GitNotFound, MainCheckedOut
from mergegate.statemachine import (
    CandidateNotFound,
    ConcurrencyConflict,
    IllegalTransition,
    LeaseHeld,
    MergegateError,
    RepositoryError,
    StoreError,
)

from .errors import ConfigBrokenInRun, ConfigError, NotARepository, StoreLost

__all__ = ["STORE_PATIENCE", "Backoff", "ordinary"]

#: Seconds a store may fail (other than by a busy lock) before ``run`` gives up on it.
STORE_PATIENCE = 60.0

#: The first and the longest wait between two tries, in seconds.
FIRST_WAIT, LONGEST_WAIT = 0.05, 5.0

_FATAL = (ConfigError, GitNotFound, NotARepository, MainCheckedOut)
_ORDINARY = (
    ConcurrencyConflict,
    IllegalTransition,
    CandidateNotFound,
    LeaseHeld,
    StoreError,
    RepositoryError,
)


def _busy_store(err: StoreError) -> bool:
    """A store that is there but locked by another writer (SQLite's busy timeout)."""
    text = str(err)
    return "locked" in text or "busy" in text


def ordinary(err: BaseException) -> bool:
    """Whether ``err`` is an ordinary event of a shared host, to be waited out."""
    # A checked-out main that changed under a move, or a configuration edited under
    # run, is a person at work: waited out, though the same found at start-up is fatal.
    if isinstance(err, CheckoutInUse | ConfigBrokenInRun):
        return True
    return isinstance(err, _ORDINARY) and not isinstance(err, _FATAL)


@attrs.define
class Backoff:
    """The growing wait between tries, and what to say about it on the progress line."""

    delay: float = FIRST_WAIT
    said: str | None = None
    said_at: float = 0.0
    #: When the store first failed in this run of failures (monotonic), for STORE_PATIENCE.
    store_failing_since: float | None = None

    def reset(self) -> None:
        """A step went through: the next failure starts from a short wait again."""
        self.delay = FIRST_WAIT
        self.said = None
        self.store_failing_since = None

    def next_wait(self, err: MergegateError) -> float:
        """How long to wait after ``err``; raises StoreLost if the store is given up on."""
        now = time.monotonic()
        if isinstance(err, StoreError) and not _busy_store(err):
            if self.store_failing_since is None:
                self.store_failing_since = now
            elif now - self.store_failing_since > STORE_PATIENCE:
                raise StoreLost(str(err), STORE_PATIENCE) from err
        else:
            self.store_failing_since = None
        wait = self.delay
        # A conflict with a person's move is settled at once: only the next try tells.
        if isinstance(err, ConcurrencyConflict | IllegalTransition | CandidateNotFound):
            wait = FIRST_WAIT
        self.delay = min(self.delay * 2, LONGEST_WAIT)
        return wait

    def line(self, err: MergegateError, wait: float) -> str | None:
        """The progress line for ``err``, or ``None`` if the same was said in the last 30 s."""
        what = str(err).splitlines()[0] if str(err) else type(err).__name__
        now = time.monotonic()
        if what == self.said and now - self.said_at < 30:
            return None
        self.said, self.said_at = what, now
        return f"waiting: {what} (trying again in {wait:.2g} s)"
