"""The form a schema migration is written in: numbered steps of template statements.

A statement is a template whose ``{id}``, ``{ref}``, ``{int}``, ``{text}``,
``{time}``, ``{json}`` and ``{bool}`` name a column type, which a dialect's type
map below fills in; a statement for one backend only is an :class:`Only`. The
steps themselves are listed in :mod:`.migrations`.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["Migration", "Only", "POSTGRES_TYPES", "SQLITE_TYPES"]


@attrs.frozen
class Only:
    """A template statement that runs on one backend only (``backend``: a ``Store.backend``)."""

    backend: str
    sql: str


@attrs.frozen
class Migration:
    """One schema step: ``version`` is its number, ``statements`` run in order.

    In :data:`MIGRATIONS` a statement may be an :class:`Only`; the rendered
    lists hold plain SQL, the statements of their backend.
    """

    version: int
    name: str
    statements: tuple[str | Only, ...]


SQLITE_TYPES: Mapping[str, str] = {
    "id": "INTEGER PRIMARY KEY",
    "ref": "INTEGER",
    "int": "INTEGER",
    "text": "TEXT",
    "time": "TEXT",
    "json": "TEXT",
    "bool": "INTEGER",
}

POSTGRES_TYPES: Mapping[str, str] = {
    "id": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "ref": "bigint",
    "int": "integer",
    "text": "text",
    "time": "timestamptz",
    "json": "jsonb",
    "bool": "boolean",
}
