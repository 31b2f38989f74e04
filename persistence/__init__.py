"""Transition-log stores: embedded SQLite, and PostgreSQL for several hosts.

``__all__`` is the public API; the migrations and the codec's helpers, imported
as ``X as X``, are internals shared with mergegate's CLI and tests.
"""

from typing import TYPE_CHECKING, Any

from .checkbuilds import CheckBuilds as CheckBuilds
from .codec import (
    dump_report,
    evidence_from_json,
    load_report,
    report_from_json,
    report_to_json,
)
from .codec import load_evidence as load_evidence
from .codec import unstructure as unstructure
from .migrations import MIGRATIONS as MIGRATIONS
from .migrations import POSTGRES_MIGRATIONS as POSTGRES_MIGRATIONS
from .migrations import SQLITE_MIGRATIONS as SQLITE_MIGRATIONS
from .migrations import Migration as Migration
from .sqlite import SQLiteStore
from .transfer import export_queue as export_queue
from .transfer import import_queue as import_queue
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
