"""What every part of a SQL store's transaction shares: one cursor, its locks, what it read.

The queries use ``?`` placeholders and the dialect rewrites them. Reads wait
for their rows; writes whose results nobody needs are only executed, so on
PostgreSQL, whose transactions run in pipeline mode, they travel with the next
read or with the ``COMMIT``.

Reading a candidate fetches, in the same query where the dialect asks for it
(``prefetch``), its blocked outcome and the slug's newest follow-up. Only a
transaction that holds the candidate (SQLite's ``BEGIN IMMEDIATE`` keeps every
other writer out; PostgreSQL's advisory lock on the slug keeps out every writer
of that slug) changes those rows, so they are remembered here, and kept
current by the parts that write them, until the transaction ends. The parts
are in :mod:`.sqltransaction`, :mod:`.txqueue`, :mod:`.txblocked` and
:mod:`.txleases`.
"""

from __future__ import annotations

from typing import Any

from mergegate.statemachine import BlockedRecord, Candidate, CandidateKey, QueueControls

from .dialect import Dialect
from .rows import Mapper

__all__ = ["TransactionBase"]


class TransactionBase:
    """One transaction's cursor, locks and remembered rows, shared by the parts of
    :class:`~.sqltransaction.SQLTransaction`."""

    def __init__(self, cursor: Any, dialect: Dialect, mapper: Mapper) -> None:
        # One cursor for the whole transaction: making one per statement costs
        # more client time than the statement itself.
        self._cursor = cursor
        self._d = dialect
        self._q = dialect.queries
        self._map = mapper
        self._locked: set[int] = set()
        self._candidates: dict[str, Candidate | None] = {}
        self._blocked: dict[CandidateKey, BlockedRecord | None] = {}
        self._latest: dict[str, str | None] = {}
        # Who holds a follow-up slug: a slug rule asks, then the Engine asks again.
        self._owners: dict[str, CandidateKey | None] = {}
        # Rows inserted by this transaction, waiting for their creating entry.
        self._created: set[int] = set()
        #: Set by the store when ``COMMIT`` is sent: a lost connection then
        #: leaves the outcome unknown.
        self.committing = False
        #: What a conflict the database reports later is about: (identity, seq).
        self.context: tuple[CandidateKey, int] | None = None
        #: The queue controls in force, once read; set when a control is logged
        #: (the store then wakes the integrators waiting on the controls).
        self._controls: QueueControls | None = None
        self.controlled = False

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement whose result nobody needs."""
        self._cursor.execute(self._q[query], params)

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Every row of a read."""
        return list(self._cursor.execute(self._q[query], params).fetchall())

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        return self._cursor.execute(self._q[query], params).fetchone()

    def _lock(self, *parts: str) -> None:
        key = self._d.lock_key(*parts)
        if key is not None and key not in self._locked:
            self._locked.add(key)
            self._cursor.execute(self._d.lock_sql, (key,))
