"""The reads of a SQL store whose cost stays flat as the log grows.

``list``, the status page, ``report`` and the shell's completion read the
active queue, one window of the log, or one range of an index: each is served
by an index or a bounded scan, so it costs the same at a thousand moves and at
a million (docs/performance.md, "Reading the queue").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from mergegate.statemachine import Candidate, Event, Transition

from .codec import load_time
from .rows import CANDIDATE, TRANSITION, Mapper, named

__all__ = ["BoundedReads"]

# Ids per IN list: under SQLite's oldest default cap of 999 parameters.
_SLICE = 500
# How far the clocks of two writers may disagree: log_since reads back this far
# past ``since`` before it trusts that ids and times run in the same order.
_CLOCK_SLACK = timedelta(minutes=10)
# "Recent" integrations are looked for among this many newest log entries.
_RECENT_ENTRIES = 5000


class _Host(Protocol):
    backend: str
    _map: Mapper

    def _query(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]: ...

    def _time(self, value: datetime) -> Any: ...


class BoundedReads:
    """Mixed into :class:`~.sqlstore.SQLStore`: its reads that stay flat as the log grows."""

    def active_candidates(self: _Host) -> list[Candidate]:
        # Served by candidates_active (migration 7): the queue, never the whole history.
        rows = self._query(f"SELECT {named(CANDIDATE)} FROM candidates WHERE active ORDER BY id")
        return [self._map.candidate(r) for r in rows]

    def candidates_by_ids(self: _Host, ids: Sequence[int]) -> list[Candidate]:
        found: list[Candidate] = []
        wanted = sorted(set(ids))
        # In slices: SQLite caps the number of parameters of one statement.
        for start in range(0, len(wanted), _SLICE):
            part = wanted[start : start + _SLICE]
            marks = ", ".join("?" for _ in part)
            rows = self._query(
                f"SELECT {named(CANDIDATE)} FROM candidates WHERE id IN ({marks})", tuple(part)
            )
            found.extend(self._map.candidate(r) for r in rows)
        return sorted(found, key=lambda c: c.id)

    def log_since(
        self: _Host, since: datetime, *, slack: timedelta = _CLOCK_SLACK
    ) -> list[Transition]:
        # The log has no index on ``at`` (a page per move, see migration 3), but its
        # ids grow with time: walk back by id to the first entry older than
        # ``since - slack`` and read forward from there. The cost is the window's.
        sql = (
            f"SELECT {named(TRANSITION)} FROM transitions WHERE id > COALESCE("
            "(SELECT id FROM transitions WHERE at < ? ORDER BY id DESC LIMIT 1), 0) "
            "AND at >= ? ORDER BY id"
        )
        rows = self._query(sql, (self._time(since - slack), self._time(since)))
        return [self._map.transition(r) for r in rows]

    def recent_apply_seconds(
        self: _Host, limit: int, *, within: int = _RECENT_ENTRIES
    ) -> list[float]:
        # Among the newest ``within`` entries only, so that a log without recent
        # integrations costs a bounded read, not a scan of every move ever made.
        # The newest id is read first and the bound written into the text (an int):
        # PostgreSQL then plans knowing the window is ``within`` rows. With the bound
        # computed in the statement (``id > (SELECT MAX(id) ...) - ?``), or passed as
        # a value (psycopg prepares a statement on its sixth run, and the server
        # then keeps a generic plan), it guessed a third of the log, and at 10^6
        # entries started two parallel workers for a read of a few dozen rows (13 to
        # 25 ms against 1.6 ms at 10^4; figure 10). SQLite's plan is the same either
        # way: a rowid range, then the (candidate_id, seq) key.
        newest = self._query("SELECT MAX(id) FROM transitions")[0][0]
        if newest is None:
            return []
        rows = self._query(
            "SELECT t.at, p.at FROM transitions t JOIN transitions p "
            "ON p.candidate_id = t.candidate_id AND p.seq = t.seq - 1 "
            f"WHERE t.id > {int(newest) - int(within)} AND t.event = ? AND p.event = ? "
            "ORDER BY t.id DESC LIMIT ?",
            (Event.INTEGRATE.value, Event.START_APPLY.value, limit),
        )
        return [(_when(end) - _when(start)).total_seconds() for end, start in rows]

    def slugs(self: _Host, prefix: str = "", limit: int = 200) -> list[str]:
        # A range on the candidates_slug index, cut at ``limit``: a TAB costs the
        # same at a thousand work items and at a million. Slugs are lowercase
        # ASCII, so "~" sorts after every slug character; PostgreSQL compares in
        # the C collation here, where the database's locale may order hyphens apart.
        collate = ' COLLATE "C"' if self.backend == "postgresql" else ""
        rows = self._query(
            f"SELECT DISTINCT slug{collate} FROM candidates WHERE slug{collate} >= ? "
            f"AND slug{collate} < ? ORDER BY 1 LIMIT ?",
            (prefix, prefix + "~", limit),
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def last_move_at(self: _Host) -> datetime | None:
        rows = self._query("SELECT at FROM transitions ORDER BY id DESC LIMIT 1")
        return _when(rows[0][0]) if rows else None


def _when(value: Any) -> datetime:
    """A time column as the driver returned it: PostgreSQL's a datetime, SQLite's text."""
    return value if isinstance(value, datetime) else load_time(value)
