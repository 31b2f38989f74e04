"""Reading one TOML table of ``mergegate.toml``: checked values, each error naming its key.

Shared by the configuration loader (``configfile.py``) and its CI table (``ciconfig.py``),
so that neither imports the other.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["TableReader", "type_name"]


def type_name(value: object) -> str:
    """How a configuration error names the TOML type of ``value``."""
    return {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


class TableReader:
    """Pops checked values out of one TOML table, naming each key in its errors."""

    def __init__(
        self, where: str, table: Mapping[str, Any], prefix: str = "", keys: Collection[str] = ()
    ) -> None:
        self.where, self.prefix, self.table = where, prefix, dict(table)
        #: Every key the table may hold, where it has a required one (see :meth:`required`).
        self.keys = frozenset(keys)

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.where, self.prefix + key, problem)

    def get(self, key: str, kind: type | tuple[type, ...], expected: str) -> Any:
        if key not in self.table:
            return None
        value = self.table.pop(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            raise self.error(key, f"expected {expected}, got {type_name(value)}")
        return value

    def text(self, key: str) -> str | None:
        value: str | None = self.get(key, str, "a string")
        if value is not None and (not value.strip() or "\n" in value or "\x00" in value):
            raise self.error(key, "expected one non-empty line")
        return value

    def seconds(self, key: str, bounds: tuple[float, float]) -> float | None:
        value = self.get(key, (int, float), "a number")
        low, high = bounds
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise self.error(key, f"expected {low:g} to {high:g} seconds, got {value:g}")
        return None if value is None else float(value)

    def required(self, key: str, problem: str) -> ConfigError:
        """The error for the required ``key`` missing or unusable.

        A key the table may not hold is named instead, as it is most likely
        ``key`` misspelt (``nmae = "lint"`` is an unknown ``nmae``, not a missing
        ``name``).
        """
        unknown = sorted(k for k in self.table if self.keys and k not in self.keys)
        return self._unknown(unknown) if unknown else self.error(key, problem)

    def done(self) -> None:
        if self.table:
            raise self._unknown(sorted(self.table))

    def _unknown(self, keys: list[str]) -> ConfigError:
        listed = ", ".join(keys)
        return self.error(keys[0], f"unknown key (unknown: {listed}); see docs/configuration.md")
