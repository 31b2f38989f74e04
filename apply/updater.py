"""One ``git update-ref --stdin -z`` kept between moves of ``main``, so a move starts no git.

The fence (``fence.py``) holds ``main``'s lock through an open ``update-ref``
transaction. Started anew for every move, that process cost a fork and git's
start-up (about 2 ms) on each candidate: a fifth of what ``run --once`` spends
beyond the git commands a shell loop runs (docs/performance.md, figure 9).
git (2.28 and later) runs any number of transactions in one such process, a
``start`` after each ``commit`` or ``abort``; a refused ``prepare`` ends it
(exit 128), and the next move starts another.

Crash safety is unchanged: between transactions the process holds nothing, and
within one, its stdin closing (the integrator killed) still makes git abort,
as does :meth:`Updater.drop`. One transaction at a time uses the process; a
second mover in the same process (a thread) finds it taken and starts its own,
as every mover did before.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import weakref

from mergegate.statemachine import RepositoryError

from .git import Git
from .liveness import start_time
from .longrunning import end

__all__ = ["Updater"]

UPDATE_REF = ("update-ref", "--stdin", "-z")


class Updater:
    """The kept ``update-ref --stdin -z`` of ``git``'s repository; see the module docstring."""

    def __init__(self, git: Git) -> None:
        self._git = git
        self._turn = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started: str | None = None
        self._dir_id: tuple[int, int] | None = None
        self._stopper: weakref.finalize[[subprocess.Popen[bytes]], Updater] | None = None
        self._pid = os.getpid()

    def take(self) -> tuple[subprocess.Popen[bytes], str | None] | None:
        """The running process and its start time, now this caller's; ``None`` if in use.

        The caller gives it back with :meth:`give_back` (it answered ``ok``) or
        :meth:`drop` (anything else). Raises RepositoryError if git cannot start.
        """
        if not self._turn.acquire(blocking=False):
            return None
        try:
            return self._running()
        except BaseException:
            self._turn.release()
            raise

    def give_back(self) -> None:
        """The transaction ended cleanly; the process waits for the next."""
        self._turn.release()

    def drop(self) -> None:
        """End the process (EOF on stdin: git aborts what it prepared) and give back the turn."""
        try:
            self._stop()
        finally:
            self._turn.release()

    def close(self) -> None:
        """Stop the process if nobody uses it; safe to call twice."""
        if self._turn.acquire(blocking=False):
            self.drop()

    def _running(self) -> tuple[subprocess.Popen[bytes], str | None]:
        try:
            st = os.stat(self._git.repo)
        except OSError as err:
            self._stop()
            raise RepositoryError(
                str(self._git.repo), f"the repository is gone ({err.strerror})"
            ) from err
        dir_id = (st.st_dev, st.st_ino)
        if self._pid != os.getpid():
            # A forked child shares the parent's pipes: it starts its own process.
            if self._stopper is not None:
                self._stopper.detach()
            self._proc, self._stopper, self._pid = None, None, os.getpid()
        if self._proc is not None and (dir_id != self._dir_id or self._proc.poll() is not None):
            # A replaced repository directory: the process's cwd is the old one.
            self._stop()
        if self._proc is None:
            self._proc = self._git.spawn(*UPDATE_REF, stderr=True)
            self._started = start_time(self._proc.pid)
            self._stopper = weakref.finalize(self, end, self._proc)
            self._dir_id = dir_id
        return self._proc, self._started

    def _stop(self) -> None:
        if self._stopper is not None:
            with contextlib.suppress(OSError):
                self._stopper()
        self._proc, self._stopper, self._started = None, None, None
