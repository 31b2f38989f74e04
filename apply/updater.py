"""A spare ``git update-ref --stdin -z``, started before it is needed, for the fence's next move.

The fence (``fence.py``) holds ``main``'s lock through an open ``update-ref``
transaction. Started when the move began, that process put a fork and git's
start-up (about 2 ms) on every candidate's path: a fifth of what ``run
--once`` spent beyond the git commands a shell loop runs (docs/performance.md,
figure 9). Now the next mover's process is started as the last move ends, and
starts up while the integrator reads and merges the next candidate.

Each process still runs ONE transaction. git reads the time of its reflog
entries once per process, at the first (git 2.39): a process kept for many
moves wrote each later move of ``main`` into the reflog with the time of the
first. A spare that waited has not written yet, so its one entry has the time
of its move (``tests/apply/test_apply_fence.py``). What git reads as it starts
(``core.logAllRefUpdates``) is read up to one move early.

Crash safety is unchanged: a spare holds nothing, and a process within a
transaction aborts it when its stdin closes (the integrator killed, or
:meth:`Updater.drop`). One transaction at a time takes the spare; a second
mover in the same process (a thread) starts its own, as every mover did before.
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

__all__ = ["REFLOG_MESSAGE", "UPDATE_REF", "Updater"]

#: The one command of every fenced move (here and in fence.py). ``-m`` names
#: mergegate in main's reflog: ``git reflog main`` tells its moves from a person's.
REFLOG_MESSAGE = "mergegate: fenced move"
UPDATE_REF = ("update-ref", "--stdin", "-z", "-m", REFLOG_MESSAGE)


def _end_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        end(proc)
    procs.clear()


class Updater:
    """One spare ``update-ref --stdin -z`` for ``git``'s repository; see the module docstring."""

    def __init__(self, git: Git) -> None:
        self._git = git
        self._turn = threading.Lock()
        self._spare: tuple[subprocess.Popen[bytes], str | None, tuple[int, int]] | None = None
        # Every process started and not yet reaped: the spare, and those ending.
        self._procs: list[subprocess.Popen[bytes]] = []
        self._stopper = weakref.finalize(self, _end_all, self._procs)
        self._pid = os.getpid()

    def take(self) -> tuple[subprocess.Popen[bytes], str | None] | None:
        """A process for one transaction and its start time; ``None`` if another mover has it.

        The caller ends the turn with :meth:`done` (git answered ``ok``) or
        :meth:`drop` (anything else). Raises RepositoryError if git cannot start.
        """
        if not self._turn.acquire(blocking=False):
            return None
        try:
            dir_id = self._dir_id()
            if self._pid != os.getpid():
                # A forked child shares the parent's pipes: it starts its own processes.
                self._procs.clear()
                self._spare, self._pid = None, os.getpid()
            spare, self._spare = self._spare, None
            if spare is not None and (spare[2] != dir_id or spare[0].poll() is not None):
                # Dead, or started in a repository directory since replaced (its cwd).
                self._end(spare[0])
                spare = None
            if spare is None:
                spare = self._start(dir_id)
            return spare[0], spare[1]
        except BaseException:
            self._turn.release()
            raise

    def done(self, proc: subprocess.Popen[bytes]) -> None:
        """The transaction ended cleanly: ``proc`` exits (EOF), and the next spare starts now."""
        try:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            self._reap()
            with contextlib.suppress(RepositoryError):
                # If it cannot start now, the next take() starts one and says why.
                self._spare = self._start(self._dir_id())
        finally:
            self._turn.release()

    def drop(self, proc: subprocess.Popen[bytes]) -> None:
        """End ``proc`` now (EOF: git aborts anything prepared) and end the turn."""
        try:
            self._end(proc)
        finally:
            self._turn.release()

    def close(self) -> None:
        """Stop the spare and reap the others; the next move starts a process again."""
        with self._turn:
            self._spare = None
            _end_all(self._procs)

    def _dir_id(self) -> tuple[int, int]:
        try:
            st = os.stat(self._git.repo)
        except OSError as err:
            raise RepositoryError(
                str(self._git.repo), f"the repository is gone ({err.strerror})"
            ) from err
        return (st.st_dev, st.st_ino)

    def _start(
        self, dir_id: tuple[int, int]
    ) -> tuple[subprocess.Popen[bytes], str | None, tuple[int, int]]:
        proc = self._git.spawn(*UPDATE_REF, stderr=True)
        self._procs.append(proc)
        return proc, start_time(proc.pid), dir_id

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        end(proc)
        with contextlib.suppress(ValueError):
            self._procs.remove(proc)

    def _reap(self) -> None:
        """Forget the processes that have exited since (their pipes closed, their status read)."""
        for proc in list(self._procs):
            if self._spare is not None and proc is self._spare[0]:
                continue
            if proc.poll() is not None:
                self._end(proc)
