"""Open a store from the one string an operator gives: ``--db`` or ``MERGEGATE_DB``.

psycopg is imported only when a PostgreSQL URL is opened, so SQLite users do
not need the ``mergegate[postgres]`` extra.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mergegate.statemachine import InvalidInput, Store, StoreError

from .sqlite import SQLiteStore

__all__ = ["open_store"]

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_EXPECTED = (
    "use sqlite:///absolute/path, sqlite:relative/path, a plain file path, "
    "or postgresql://user@host:port/dbname[?schema=name]"
)


def open_store(url: str) -> Store:
    """Open the store ``url`` names, applying any missing migration.

    ``sqlite:///abs/path``, ``sqlite:relative/path`` and a plain path open a
    :class:`SQLiteStore`; ``postgresql://...`` and ``postgres://...`` open a
    PostgresStore, whose optional ``schema`` query parameter is mergegate's own.
    Raises InvalidInput for any other scheme and StoreError when the store
    cannot be opened.
    """
    if not url.strip():
        raise InvalidInput("store URL", url, _EXPECTED)
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:")
        if path.startswith("//"):
            path = path.removeprefix("//")
            if not path.startswith("/"):
                raise InvalidInput(
                    "store URL", url, f"a sqlite:// URL needs an absolute path; {_EXPECTED}"
                )
        if not path:
            raise InvalidInput("store URL", url, f"no file path; {_EXPECTED}")
        return SQLiteStore(path)
    match = _URL.match(url)
    if match is None:
        return SQLiteStore(url)
    if match["scheme"].lower() not in ("postgresql", "postgres"):
        raise InvalidInput(
            "store URL", _redact(url), f"unknown scheme {match['scheme']!r}; {_EXPECTED}"
        )
    conninfo, schema = _split_schema(url)
    try:
        from .postgres import PostgresStore  # noqa: PLC0415 - psycopg is optional
    except ImportError as err:
        raise StoreError(
            "postgresql",
            f"psycopg is not installed ({err}); install mergegate[postgres] to use {_redact(url)}",
        ) from err
    return PostgresStore(conninfo, schema=schema)


def _split_schema(url: str) -> tuple[str, str | None]:
    """Take mergegate's ``schema`` parameter out; libpq would reject it."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in params if k == "schema"]
    if len(schemas) > 1 or (schemas and not schemas[0]):
        raise InvalidInput("store URL", _redact(url), "give one non-empty schema parameter")
    rest = urlencode([(k, v) for k, v in params if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[0] if schemas else None


def _redact(url: str) -> str:
    """``url`` without its password, fit for a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
