"""Free text on PostgreSQL: ``text`` and ``jsonb`` cannot hold U+0000, mergegate's text can.

A check's output tail, a diagnostic or an actor name may contain a NUL
character; SQLite stores it, PostgreSQL refuses it. So the PostgreSQL store
writes free text through :func:`to_pg`, which replaces NUL by ``U+E000 '0'``
and doubles any U+E000 already there, and reads it back through
:func:`from_pg`. The mapping is exact both ways, costs one ``in`` test for
text without either character, and leaves every other character alone.
"""

from __future__ import annotations

import re
from typing import Any, overload

__all__ = ["from_pg", "json_from_pg", "json_to_pg", "to_pg"]

_ESC = "\ue000"
_ESCAPED = re.compile(f"{_ESC}(.)", re.DOTALL)


@overload
def to_pg(value: str) -> str: ...
@overload
def to_pg(value: None) -> None: ...
@overload
def to_pg(value: str | None) -> str | None: ...
def to_pg(value: str | None) -> str | None:
    """``value`` in a form PostgreSQL's ``text`` and ``jsonb`` accept."""
    if value is None or ("\0" not in value and _ESC not in value):
        return value
    return value.replace(_ESC, _ESC + _ESC).replace("\0", _ESC + "0")


@overload
def from_pg(value: str) -> str: ...
@overload
def from_pg(value: None) -> None: ...
@overload
def from_pg(value: str | None) -> str | None: ...
def from_pg(value: str | None) -> str | None:
    """The text :func:`to_pg` was given."""
    if value is None or _ESC not in value:
        return value
    return _ESCAPED.sub(lambda m: "\0" if m[1] == "0" else m[1], value)


def json_to_pg(data: Any) -> Any:
    """JSON-ready ``data`` with every string passed through :func:`to_pg`."""
    if isinstance(data, str):
        return to_pg(data)
    if isinstance(data, dict):
        return {to_pg(k): json_to_pg(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [json_to_pg(v) for v in data]
    return data


def json_from_pg(data: Any) -> Any:
    """The data :func:`json_to_pg` was given (tuples come back as lists, as JSON has them)."""
    if isinstance(data, str):
        return from_pg(data)
    if isinstance(data, dict):
        return {from_pg(k): json_from_pg(v) for k, v in data.items()}
    if isinstance(data, list):
        return [json_from_pg(v) for v in data]
    return data
