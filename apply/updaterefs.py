"""One idle ``git update-ref --stdin -z`` kept between moves, so a move starts no git process.

The fence (``fence.py``) takes ``main``'s lock by preparing a transaction in
``update-ref --stdin``; starting that git for every move costs milliseconds on
the path of every candidate. ``update-ref --stdin`` takes one transaction after
another (``start`` ... ``commit``, then ``start`` again), so a mover can keep
the process between moves. Nothing is held between them: the lock exists only
from ``prepare`` to ``commit`` or ``abort``, as before, and a git whose stdin
closes (its mover died) aborts what it had prepared, as before.

A process is reused only if it answered its last transaction in full and
wrote nothing on stderr; a failed ``prepare`` or ``commit`` ends git itself,
and the next move starts a new one. Two moves at once (a recovery beside a
move, in two threads) each get a process: the one kept is lent to one at a
time. A forked child, or a replaced repository directory, starts its own.
"""

from __future__ import annotations

import os
import select
import subprocess
import threading
import weakref

from .git import Git
from .longrunning import end

__all__ = ["UpdateRefs"]


def _quiet(proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` still runs and has written nothing on stderr (nothing unread)."""
    if proc.poll() is not None or proc.stderr is None:
        return False
    readable, _, _ = select.select([proc.stderr], [], [], 0)
    return not readable


class UpdateRefs:
    """Lends a running ``update-ref --stdin -z`` in ``git``'s repository; see the module."""

    def __init__(self, git: Git) -> None:
        self._git = git
        self._lock = threading.Lock()
        self._dir_id: tuple[int, int] | None = None
        self._pid = os.getpid()
        # The kept process, in a list the finalizer shares: it ends the process
        # when the pool is collected, or at exit, without holding the pool.
        self._slot: list[subprocess.Popen[bytes] | None] = [None]
        weakref.finalize(self, _end_idle, self._slot, self._pid)

    def lend(self) -> tuple[subprocess.Popen[bytes], bool]:
        """A running ``update-ref --stdin -z`` with no transaction open, and whether it was
        kept from an earlier move; give it back with :meth:`give_back` after a whole
        transaction, or :func:`end` it."""
        dir_id = _dir_id(self._git)
        with self._lock:
            if self._pid != os.getpid():
                # The parent's process and pipes are the parent's: forget them.
                self._slot[0], self._pid = None, os.getpid()
            proc, self._slot[0] = self._slot[0], None
            same_dir = dir_id == self._dir_id
        if proc is not None and same_dir and _quiet(proc):
            return proc, True
        if proc is not None:
            end(proc)
        proc = self._git.spawn("update-ref", "--stdin", "-z", stderr=True)
        with self._lock:
            self._dir_id = dir_id
        return proc, False

    def give_back(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep ``proc`` for the next move if it is fit and none is kept; else end it."""
        if _quiet(proc):
            with self._lock:
                if self._slot[0] is None and self._pid == os.getpid():
                    self._slot[0] = proc
                    return
        end(proc)

    def close(self) -> None:
        """End the kept process, if any. Safe to call twice."""
        with self._lock:
            proc, self._slot[0] = self._slot[0], None
        if proc is not None and self._pid == os.getpid():
            end(proc)


def _dir_id(git: Git) -> tuple[int, int] | None:
    try:
        st = os.stat(git.repo)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _end_idle(slot: list[subprocess.Popen[bytes] | None], owner: int) -> None:
    if os.getpid() != owner:
        return  # a forked child's exit: the process is its parent's
    proc = slot[0]
    slot[0] = None
    if proc is not None:
        end(proc)
