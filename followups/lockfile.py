"""An exclusive lock on a lock file that is never reached through a symlink.

filelock's ``FileLock`` before 3.20.1 opened its file with ``O_TRUNC`` and
followed a symlink (CVE-2025-68146), and ``filelock>=3.13`` allowed those
releases, so a planted ``roadmap.yaml.lock -> /some/file`` truncated that
file. Rather than trust whichever release is installed, this lock opens the
file itself with ``O_NOFOLLOW`` and without ``O_TRUNC``, then takes
``flock(2)`` on it: the same advisory lock that filelock's Unix lock takes,
so a writer on either side still excludes the other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import LockTimeout, UnsafeFile

__all__ = ["exclusive"]

# Read-only is enough for flock(2); nothing is ever written to the lock file.
_FLAGS = os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@contextlib.contextmanager
def exclusive(path: Path, *, timeout: float, poll: float = 0.005) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created empty if missing) for the block.

    Raises UnsafeFile if ``path`` is a symlink or not a regular file (its
    target is neither opened nor changed), LockTimeout if another holder keeps
    it for ``timeout`` seconds, and OSError if the file cannot be created.
    """
    try:
        fd = os.open(path, _FLAGS, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeFile(str(path), "is a symlink") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeFile(str(path), "is not a regular file")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(str(path), timeout) from None
                time.sleep(poll)
        yield
    finally:
        # Closing the only descriptor releases the flock.
        os.close(fd)
