"""What a SQL store needs of its backend's connection: the ``Datastore`` protocol.

A store holds one datastore; so do its transactions, through the store's
write context. The datastore owns the connection and everything that is
about the driver: opening, beginning, committing, rolling back, and turning
the driver's errors into mergegate's. Its ``lock`` is held for a whole
transaction and around every read, which is what makes one store safe to
share between threads (see "Threads" in docs/python-api.md).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from mergegate.statemachine import MergegateError

from .dialect import Dialect
from .sqltransaction import SQLTransaction

__all__ = ["Datastore"]


class Datastore(Protocol):
    """One backend's connection, as the shared SQL store uses it."""

    @property
    def dialect(self) -> Dialect:
        """What this backend's SQL says differently."""

    #: Held by the store for a whole transaction and around every read.
    lock: threading.RLock
    #: Where the store points, for messages (never a password).
    where: str

    def query(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        """Run one read outside any transaction; raises a MergegateError."""

    def begin(self) -> Any:
        """Begin a write transaction and return the cursor it runs on."""

    def commit(self, tx: SQLTransaction) -> None:
        """Commit; raises a MergegateError (the transaction then rolled back)."""

    def abort(self, exc: BaseException, tx: SQLTransaction) -> None:
        """Roll back after ``exc``; raises ``exc`` translated if it is the driver's."""

    def prepare_migration(self, tx: SQLTransaction) -> None:
        """Make the migration transaction exclusive (and create what it lives in)."""

    def recorded_version(self) -> int | None:
        """The newest migration recorded, without writing; ``None`` when there is none."""

    def close(self) -> None:
        """Close the connection."""

    def translate(self, err: Exception, tx: SQLTransaction | None) -> MergegateError:
        """The one place the driver's errors become mergegate's."""
