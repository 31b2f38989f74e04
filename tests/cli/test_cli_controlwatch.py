"""The run's control watcher: closing it never waits out a store wait, and its store is closed."""

from __future__ import annotations

import threading
from pathlib import Path

from mergegate.cli.controlwatch import ControlWatch
from mergegate.cli.stopsignal import StopSignal
from mergegate.persistence import SQLiteStore


class _HeldWait(SQLiteStore):
    """A real SQLite store whose control wait lasts until the test lets it go."""

    entered = threading.Event()
    release = threading.Event()
    closed = threading.Event()

    def wait_for_control(self, after: int, timeout: float) -> bool:
        self.entered.set()
        self.release.wait(30)
        return False

    def close(self) -> None:
        super().close()
        self.closed.set()


def test_close_returns_while_the_thread_waits_and_the_thread_closes_its_store(
    tmp_path: Path,
) -> None:
    """``close`` returns at once (``run --once`` ends without a wait); the thread then ends."""
    path = tmp_path / "store.sqlite3"
    SQLiteStore(path).close()
    watch = ControlWatch(lambda: _HeldWait(path), StopSignal())
    watch.arm(0)
    assert _HeldWait.entered.wait(30), "the watcher never began its wait"
    thread = watch._thread
    assert thread is not None
    joins: list[float | None] = []
    thread.join = joins.append  # type: ignore[method-assign,assignment]
    watch.close()
    del thread.join
    assert joins == [], "close waited for the watcher's store wait"
    assert thread.is_alive()
    assert not _HeldWait.closed.is_set()
    _HeldWait.release.set()
    thread.join(30)
    assert not thread.is_alive(), "the watcher did not end after its wait"
    assert _HeldWait.closed.is_set(), "the watcher did not close its store"
