"""Transition-log stores: embedded SQLite, and PostgreSQL for several hosts."""

from typing import TYPE_CHECKING, Any

from .codec import (
    dump_report,
    evidence_from_json,
    load_evidence,
    load_report,
    report_from_json,
    report_to_json,
    unstructure,
)
from .migrations import MIGRATIONS, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, Migration
from .sqlite import SQLiteStore
from .url import open_store

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = [
    "MIGRATIONS",
    "POSTGRES_MIGRATIONS",
    "SQLITE_MIGRATIONS",
    "Migration",
    "PostgresStore",
    "SQLiteStore",
    "dump_report",
    "evidence_from_json",
    "load_evidence",
    "load_report",
    "open_store",
    "report_from_json",
    "report_to_json",
    "unstructure",
]


def __getattr__(name: str) -> Any:
    # psycopg is the optional extra mergegate[postgres]: import it only when asked.
    if name == "PostgresStore":
        from .postgres import PostgresStore  # noqa: PLC0415 - psycopg is optional

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
