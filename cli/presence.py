"""Whether a ``mergegate run`` is up on this host, for the commands that run beside it.

``run`` holds a shared ``flock`` on ``<git-common-dir>/mergegate/run.alive``
for as long as it lives; the kernel drops it when the process ends, however
it ends (``kill -9`` included), so there is no stale state to clean up. A
command asks by trying an exclusive lock without waiting: refused means an
integrator is up. Only this host's integrators are seen; one on another host
(a shared PostgreSQL queue) shows only through the lease.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["ALIVE_FILE", "Presence", "integrator_up"]

ALIVE_FILE = "run.alive"


class Presence:
    """``run``'s side: hold the shared lock while the integrator lives."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(state_dir / ALIVE_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def integrator_up(state_dir: Path) -> bool:
    """Whether a ``run`` on this host holds its presence lock now."""
    try:
        fd = os.open(state_dir / ALIVE_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
