"""Names the global options print in their help, kept apart so ``--help`` imports no session."""

from __future__ import annotations

__all__ = ["DB_ENV", "DB_FILE", "LOG_FILE", "VERSION"]

# The one place the version is written: pyproject.toml reads it from here
# (``[tool.setuptools.dynamic]``), and ``--version`` prints it without loading
# importlib.metadata and the email parser it pulls in (about 20 ms a call).
VERSION = "0.1.0"

DB_ENV = "MERGEGATE_DB"
DB_FILE = "mergegate.sqlite3"
LOG_FILE = "mergegate.log"
