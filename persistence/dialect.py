"""What one SQL backend does differently from another, and nothing else.

The shared store (:mod:`.sqlstore`) and transaction (:mod:`.sqltransaction`)
write every query once, with ``?`` placeholders, and ask the dialect only for
what truly differs between backends: the placeholder style, the column types,
how a time, free text and a JSON report travel to and from the driver, the
clause that claims a queue row, and the advisory lock a backend may need.
The upsert is not among them: SQLite and PostgreSQL both speak
``INSERT ... ON CONFLICT``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, overload

from mergegate.statemachine import BlockedReport

from .codec import dump_time, report_to_json

__all__ = ["NEXT_QUEUE_POS", "Dialect"]

#: Written in a query where the next queue position goes; :attr:`Dialect.queries`
#: puts the dialect's :attr:`Dialect.next_queue_pos` in its place.
NEXT_QUEUE_POS = "NEXT_QUEUE_POS()"


class _Queries(dict[str, str]):
    """Each query in the dialect's style, rewritten once, on first use."""

    def __init__(self, rewrite: Callable[[str], str]) -> None:
        super().__init__()
        self._rewrite = rewrite

    def __missing__(self, query: str) -> str:
        self[query] = rewritten = self._rewrite(query)
        return rewritten


class Dialect:
    """The defaults are the portable choices; a backend overrides what it must."""

    #: The ``Store.backend`` name, also used in error messages.
    backend: str = ""
    #: Column types for the templates in :mod:`.migrations`.
    types: Mapping[str, str] = {}
    #: Appended to the queue-head query inside a write transaction.
    claim_clause: str = ""
    #: The SQL expression of the next queue position (``candidates.queue_pos``):
    #: one past the largest, which is safe where one writer runs at a time.
    next_queue_pos: str = "(SELECT COALESCE(MAX(queue_pos), 0) + 1 FROM candidates)"
    #: Whether reading a candidate in a transaction should fetch its blocked
    #: outcome and newest follow-up in the same query: worth it where a query
    #: costs a network round trip, not where it is a call into a library.
    prefetch: bool = False
    #: Whether an insert reads its new id through ``RETURNING`` (a read that
    #: rides in the same round trip) rather than the cursor's ``lastrowid``
    #: (free where the driver has it; SQLite's RETURNING costs a result set).
    returning: bool = False

    #: Whether a statement may write in a CTE (``WITH x AS (UPDATE ...) INSERT``),
    #: so that a move's update and log entry travel as one statement.
    writes_in_cte: bool = False

    #: A boolean column's values as the driver should bind them: SQLite stores
    #: 0 and 1, and binding a Python bool there costs an adapter lookup.
    true: Any = 1
    false: Any = 0

    def sql(self, query: str) -> str:
        """``query``, written with ``?`` placeholders, in the driver's style."""
        return query

    @functools.cached_property
    def queries(self) -> _Queries:
        """:meth:`sql` of each query, remembered: a dict lookup per statement, not a call."""
        return _Queries(lambda query: self.sql(query.replace(NEXT_QUEUE_POS, self.next_queue_pos)))

    #: A time as the driver should bind it (sortable UTC text by default).
    time_in: Callable[[datetime], Any] = staticmethod(dump_time)

    @overload
    def text_in(self, value: str) -> str: ...
    @overload
    def text_in(self, value: None) -> None: ...
    @overload
    def text_in(self, value: str | None) -> str | None: ...
    def text_in(self, value: str | None) -> str | None:
        """Free text (actor, reason, error, owner) as the database can hold it."""
        return value

    @overload
    def text_out(self, value: str) -> str: ...
    @overload
    def text_out(self, value: None) -> None: ...
    @overload
    def text_out(self, value: str | None) -> str | None: ...
    def text_out(self, value: str | None) -> str | None:
        """The text :meth:`text_in` was given."""
        return value

    def report_in(self, report: BlockedReport) -> Any:
        """A blocked report as the driver should bind it (canonical JSON text by default)."""
        return report_to_json(report)

    def report_out(self, value: Any) -> Any:
        """The JSON data of a stored report, whatever the driver returned."""
        return value if isinstance(value, dict) else json.loads(value)

    def lock_key(self, *parts: str) -> int | None:
        """An advisory lock to take before reading ``parts``; ``None`` when writers
        are already kept out by the transaction itself."""
        return None

    #: The statement that takes the lock :meth:`lock_key` names.
    lock_sql: str = ""
