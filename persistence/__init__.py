"""Transition-log stores: embedded SQLite, and PostgreSQL for several hosts.

``__all__`` is the public API, and this module exports nothing else; the
migrations, the codec's helpers and the queue transfer are internals, imported
by mergegate's CLI and tests from their modules.
"""

from typing import TYPE_CHECKING, Any

from .codec import (
    dump_report,
    evidence_from_json,
    load_report,
    report_from_json,
    report_to_json,
)
from .sqlite import SQLiteStore
from .url import open_store

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = [
    "PostgresStore",
    "SQLiteStore",
    "dump_report",
    "evidence_from_json",
    "load_report",
    "open_store",
    "report_from_json",
    "report_to_json",
]


# Hidden from type checkers: a module __getattr__ typed `-> Any` would make every
# name importable to mypy, so `from ... import Wirng` would type-check (issue 24).
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        # psycopg is the optional extra mergegate[postgres]: import it only when asked.
        if name == "PostgresStore":
            from .postgres import PostgresStore  # noqa: PLC0415 - psycopg is optional

            return PostgresStore
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
