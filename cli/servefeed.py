"""The status page on the change feed: a long wait instead of a poll.

The page's script asks for the live part after the feed cursor it was
rendered at; :meth:`FeedViews.waited` holds that request until the log moved
past it (the store's wake-up: LISTEN/NOTIFY on PostgreSQL, SQLite's data
version) or the refresh interval passed, and the answer carries the new
cursor in :data:`CURSOR_HEADER`. ``/api/changes?after=N&wait=S`` is the same
wait for programs, answering the changes themselves. ``wait=0`` on the page
(``/?wait=0``) turns the hold off and the script polls every ``--refresh``
seconds instead: for a proxy that cuts requests held open, and for a headless
browser's virtual time, which stands still while a request is open. Imported
by ``serve`` only (it needs Starlette).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mergegate.statemachine import ChangeFeed, Store

from .output import document
from .payload import transition_json

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["CURSOR_HEADER", "MAX_WAIT", "BadQuery", "FeedViews"]

#: The longest a program may ask ``/api/changes`` to wait, in seconds (under a proxy's idle limit).
MAX_WAIT = 30.0
#: The header that carries the feed cursor a live part was rendered at.
CURSOR_HEADER = "X-Mergegate-Cursor"
#: The most changes one ``/api/changes`` answer carries; ask again after its cursor.
LIMIT = 1000


class BadQuery(ValueError):
    """A request's query that cannot be read: answered 400 with this text."""


def cursor_of(given: str | None) -> int | None:
    """The ``after=`` cursor of a request, ``None`` if it has none."""
    if given is None:
        return None
    if not given.isascii() or not given.isdigit() or len(given) > 19:
        raise BadQuery(f"after={given[:40]!r}: give a cursor the feed gave (an integer >= 0)")
    return int(given)


def seconds_of(given: str | None) -> float:
    """The ``wait=`` seconds of a request, 0 if it has none."""
    if given is None:
        return 0.0
    try:
        value = float(given)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT:
        raise BadQuery(f"wait={given[:40]!r}: give seconds from 0 to {MAX_WAIT:g}")
    return value


@attrs.define
class FeedViews:
    """The feed's part of the app over ``store`` (a store without a feed is polled)."""

    store: Store
    #: Sent with every answer (serve.py's security headers).
    headers: dict[str, str] = attrs.Factory(dict)

    @property
    def feed(self) -> ChangeFeed | None:
        return self.store if isinstance(self.store, ChangeFeed) else None

    def head(self) -> int | None:
        """The feed's head now, ``None`` without a feed."""
        return None if self.feed is None else self.feed.feed_head()

    async def waited(self, request: Request, longest: float) -> int | None:
        """Wait until the log moved past ``after=`` (if given), at most ``longest`` seconds
        (or ``wait=`` seconds if the request says); the feed's head to render at
        (``None`` for a store without a feed)."""
        feed = self.feed
        if feed is None:
            return None
        if "wait" in request.query_params:
            longest = seconds_of(request.query_params["wait"])
        after = cursor_of(request.query_params.get("after"))
        if after is not None and after >= feed.feed_head():
            # The wait holds a connection of its own in a worker thread, so the
            # event loop goes on serving every other request meanwhile.
            await run_in_threadpool(feed.wait_for_change, after, longest)
        # Read before rendering: a move after this read wakes the next wait at once.
        return feed.feed_head()

    async def changes(self, request: Request) -> Response:
        """``/api/changes``: the changes after ``after=``, waiting up to ``wait=`` for one."""
        feed = self.feed
        if feed is None:
            raise BadQuery("this store has no change feed")
        after = cursor_of(request.query_params.get("after")) or 0
        await self.waited(request, 0.0)
        found = feed.changes(after, limit=LIMIT)
        result = {
            "after": after,
            "cursor": found[-1].cursor if found else after,
            "changes": [
                {
                    "cursor": c.cursor,
                    "slug": c.key.slug,
                    "transition": transition_json(c.transition),
                }
                for c in found
            ],
        }
        text = document("serve /api/changes", 0, result=result)
        return Response(text, media_type="application/json", headers=self.headers)
