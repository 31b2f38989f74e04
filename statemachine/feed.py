"""The change feed: every transition of the log, in one global order, behind a cursor.

A reader keeps a cursor (an ``int``; ``0`` is the beginning), asks for the
changes after it, and waits for the next one instead of polling::

    cursor = 0
    while True:
        for change in store.changes(after=cursor):
            cursor = change.cursor
            handle(change)
        store.wait_for_change(cursor, timeout=30.0)

The order is gap-free: once a reader has read up to a cursor, no change with a
smaller cursor appears later, so a reader that resumes from its saved cursor
misses nothing and sees nothing twice. The stores keep that promise in
different ways (docs/python-api.md, "The change feed"): SQLite commits one
writer at a time, so its row ids are in commit order; PostgreSQL orders by
(transaction id, row id) and reads only what no running transaction can still
add to. A cursor is opaque (compare cursors of one store, never across stores)
but stable: it can be saved and used by another process.

``wait_for_change`` wakes on PostgreSQL's ``LISTEN``/``NOTIFY`` and, on SQLite,
on the file's data version, read every few milliseconds on a connection of its
own. It returns ``True`` once a change after the cursor is readable, ``False``
at the timeout; either way, read with ``changes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import attrs

from .records import CandidateKey, Transition

__all__ = ["Change", "ChangeFeed", "follow"]


@attrs.frozen
class Change:
    """One transition of the log, with its place in the global order.

    ``key`` is the candidate's identity as of this move (its sha is the
    transition's); ``cursor`` is what to pass as ``after=`` to read on.
    """

    cursor: int
    key: CandidateKey
    transition: Transition


@runtime_checkable
class ChangeFeed(Protocol):
    """What a store offers for the feed (both mergegate stores implement it)."""

    def changes(self, after: int = 0, *, limit: int = 1000) -> list[Change]:
        """Up to ``limit`` changes after cursor ``after``, oldest first."""
        ...

    def feed_head(self) -> int:
        """The cursor of the newest readable change (``0`` for an empty log): follow from here."""
        ...

    def wait_for_change(self, cursor: int, timeout: float) -> bool:
        """Block until a change after ``cursor`` is readable (``True``) or ``timeout``
        seconds pass (``False``)."""
        ...


def follow(
    feed: ChangeFeed, after: int = 0, *, timeout: float = 1.0, idle_rounds: int | None = None
) -> Iterator[Change]:
    """Every change after ``after``, waiting for new ones as they come.

    Waits at most ``timeout`` seconds at a time; ``idle_rounds`` stops after
    that many waits in a row found nothing (``None``: never stop). Save
    ``change.cursor`` as you go to resume after a restart.
    """
    cursor, idle = after, 0
    while True:
        batch = feed.changes(after=cursor)
        for change in batch:
            cursor = change.cursor
            yield change
        if batch:
            idle = 0
            continue
        if feed.wait_for_change(cursor, timeout):
            idle = 0
            continue
        idle += 1
        if idle_rounds is not None and idle >= idle_rounds:
            return
