"""Transition-log stores: embedded SQLite, and PostgreSQL for several hosts."""

from .codec import (
    dump_report,
    evidence_from_json,
    load_evidence,
    load_report,
    report_from_json,
    report_to_json,
    unstructure,
)
from .migrations import SQLITE_MIGRATIONS, Migration
from .sqlite import SQLiteStore

__all__ = [
    "SQLITE_MIGRATIONS",
    "Migration",
    "SQLiteStore",
    "dump_report",
    "evidence_from_json",
    "load_evidence",
    "load_report",
    "report_from_json",
    "report_to_json",
    "unstructure",
]
