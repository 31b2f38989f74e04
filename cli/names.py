"""Names the global options print in their help, kept apart so ``--help`` imports no session."""

from __future__ import annotations

__all__ = ["DB_ENV", "DB_FILE", "LOG_FILE"]

DB_ENV = "MERGEGATE_DB"
DB_FILE = "mergegate.sqlite3"
LOG_FILE = "mergegate.log"
