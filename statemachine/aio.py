"""An asyncio facade over the same :class:`~.engine.Engine`, for orchestrators built on asyncio.

Each call runs the Engine's own call in a worker thread (``asyncio.to_thread``),
so the event loop never blocks on a commit, a git apply or a wait for the
change feed, and every guarantee is the Engine's: one transaction per call,
the table's checks, ``expected_seq``, idempotency keys, the lease. Both stores
are safe to share between threads (each holds one connection behind a lock:
docs/python-api.md, "Threads"), which is what lets many tasks share one
facade. A PostgreSQL store serializes its calls on its one session; give the
tasks that should write in parallel a facade each, over a store each.

``wait_for_change`` holds a worker thread while it waits: the default executor
has a few dozen, so wait in one task and wake the others with an
``asyncio.Event``, rather than wait in hundreds. Its thread waits in slices of
:data:`WAIT_SLICE` seconds and stops at the next one once the task is
cancelled, so a cancelled wait does not hold up ``asyncio.run``'s exit.

A cancelled call that is already running in its thread is not stopped: a
thread cannot be cancelled, so its transaction still commits (or fails) on its
own. Cancelling only stops the task from waiting for it; re-read what you
need (or retry with the same ``idempotency_key``) rather than assume it did not
happen.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import ParamSpec, TypeVar

import attrs

from .applier import Applier
from .calls import Request
from .engine import Engine
from .errors import InvalidInput
from .feed import Change, ChangeFeed
from .queueview import QueueEntry, RunSummary, queue, run_queue
from .records import BlockedReport, Candidate, CandidateKey, Outcome
from .states import State

__all__ = ["AsyncEngine"]

#: How often a cancelled ``wait_for_change``'s thread notices the cancellation, in seconds.
WAIT_SLICE = 0.1

_P = ParamSpec("_P")
_R = TypeVar("_R")


@attrs.frozen
class AsyncEngine:
    """``await``-able calls of ``engine``, each run in a worker thread.

    The lifecycle calls take the Engine's arguments; :meth:`call` runs any
    other function of the Engine (or of anything else) the same way.
    """

    engine: Engine

    async def call(self, fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``fn(*args, **kwargs)`` in a worker thread."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _feed(self) -> ChangeFeed:
        store = self.engine.store
        if not isinstance(store, ChangeFeed):
            raise InvalidInput("store", type(store).__name__, "use a store with a change feed")
        return store

    async def fire(self, request: Request) -> Outcome:
        """``Engine.fire``."""
        return await self.call(self.engine.fire, request)

    async def submit(
        self,
        key: CandidateKey,
        *,
        actor: str | None = None,
        idempotency_key: str | None = None,
        supersede: bool = False,
    ) -> Outcome:
        """``Engine.submit``."""
        return await self.call(
            self.engine.submit,
            key,
            actor=actor,
            idempotency_key=idempotency_key,
            supersede=supersede,
        )

    async def start_apply(
        self,
        slug: str,
        *,
        owner: str,
        ttl: timedelta | None = None,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """``Engine.start_apply``."""
        return await self.call(
            self.engine.start_apply,
            slug,
            owner=owner,
            ttl=ttl,
            expected_seq=expected_seq,
            idempotency_key=idempotency_key,
        )

    async def start_next(self, *, owner: str) -> Outcome | None:
        """``Engine.start_next``: claim and start the queue's head, or ``None``."""
        return await self.call(self.engine.start_next, owner=owner)

    async def integrate(
        self, slug: str, *, main_sha: str, expected_seq: int | None = None
    ) -> Outcome:
        """``Engine.integrate``."""
        return await self.call(
            self.engine.integrate, slug, main_sha=main_sha, expected_seq=expected_seq
        )

    async def block(
        self, slug: str, report: BlockedReport, *, expected_seq: int | None = None
    ) -> Outcome:
        """``Engine.block``."""
        return await self.call(self.engine.block, slug, report, expected_seq=expected_seq)

    async def start_remediation(self, slug: str, *, expected_seq: int | None = None) -> Outcome:
        """``Engine.start_remediation``."""
        return await self.call(self.engine.start_remediation, slug, expected_seq=expected_seq)

    async def resume(
        self,
        slug: str,
        *,
        new_sha: str | None = None,
        force_reason: str | None = None,
        expected_seq: int | None = None,
    ) -> Outcome:
        """``Engine.resume``."""
        return await self.call(
            self.engine.resume,
            slug,
            new_sha=new_sha,
            force_reason=force_reason,
            expected_seq=expected_seq,
        )

    async def apply(self, slug: str, applier: Applier, *, owner: str) -> Outcome:
        """``Engine.apply``: the applier runs in the worker thread too."""
        return await self.call(self.engine.apply, slug, applier, owner=owner)

    async def apply_next(self, applier: Applier, *, owner: str) -> Outcome | None:
        """``Engine.apply_next``."""
        return await self.call(self.engine.apply_next, applier, owner=owner)

    async def run_queue(
        self, applier: Applier, *, owner: str, idle_timeout: float = 0.0
    ) -> RunSummary:
        """:func:`~.queueview.run_queue` on this Engine."""
        return await self.call(
            run_queue, self.engine, applier, owner=owner, idle_timeout=idle_timeout
        )

    async def get(self, slug: str) -> Candidate:
        """``Engine.get``."""
        return await self.call(self.engine.get, slug)

    async def show(self, slug: str) -> Outcome:
        """``Engine.show``."""
        return await self.call(self.engine.show, slug)

    async def queue(self, *, states: Iterable[State] | None = None) -> list[QueueEntry]:
        """:func:`~.queueview.queue` of this Engine's store."""
        return await self.call(queue, self.engine.store, states=states, table=self.engine.table)

    async def changes(self, after: int = 0, *, limit: int = 1000) -> list[Change]:
        """The store's ``changes`` (InvalidInput if the store has no change feed)."""
        return await self.call(self._feed().changes, after, limit=limit)

    async def feed_head(self) -> int:
        """The store's ``feed_head``."""
        return await self.call(self._feed().feed_head)

    async def wait_for_change(self, cursor: int, timeout: float) -> bool:
        """The store's ``wait_for_change``, in a worker thread (see the module docstring).

        The thread waits in slices of :data:`WAIT_SLICE`; once this task is
        cancelled it returns at the end of the current slice, freeing the thread.
        """
        feed = self._feed()
        cancelled = threading.Event()

        def wait() -> bool:
            deadline = time.monotonic() + timeout
            while True:
                # A slice that finds no change loses nothing: each one checks for a
                # change after ``cursor`` first, so the next slice sees what it missed.
                left = deadline - time.monotonic()
                if feed.wait_for_change(cursor, max(0.0, min(left, WAIT_SLICE))):
                    return True
                if cancelled.is_set() or left <= WAIT_SLICE:
                    return False

        try:
            return await asyncio.to_thread(wait)
        except asyncio.CancelledError:
            cancelled.set()
            raise
