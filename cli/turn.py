"""The host's integrators take turns through an ``flock`` on one file (see runwait.py).

The holder keeps it while the queue has work and touches the file after each
candidate; the others stand by, and a holder that made no progress for a
whole lease TTL is passed by (the lease is the one real mutex).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import attrs

__all__ = ["TURN_WAIT", "Turn"]

#: How often an integrator standing by for its turn recovers dead or expired leases.
TURN_WAIT = 2.0


@attrs.define
class Turn:
    """The host's integrators take turns through an ``flock`` on one file.

    The holder keeps the turn while the queue has work and touches the file
    after each candidate; it gives the turn up when the queue is empty.
    """

    path: Path
    held: bool = False
    _fd: int | None = None

    def take(self, wait: float) -> bool:
        """Wait up to ``wait`` seconds for the turn; ``False`` if it did not come."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        delay = 0.0005
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
            else:
                self.held = True
                self.touch()
                return True

    def touch(self) -> None:
        """Say that the holder made progress."""
        os.utime(self.path)

    def idle_for(self) -> float:
        """Seconds since the holder last made progress."""
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    def give(self) -> None:
        if self._fd is not None and self.held:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.held = False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.held = False
