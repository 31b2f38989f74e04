"""The ``mergegate`` command line: the composition root that wires every component.

Nothing imports this package. Its public surface is the console script
(``mergegate = mergegate.cli.main:main``), documented in docs/cli.md, and the
configuration loader, for tools that want to read ``mergegate.toml`` the same way.

The names are imported on first use: the console script imports this package
first, and a command must not pay for the configuration loader it never calls.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import CheckConfig, Config
    from .configfile import load_config
    from .errors import ConfigError, IntegrateRefused, UsageError, exit_code_for
    from .main import main, run

__all__ = [
    "CheckConfig",
    "Config",
    "ConfigError",
    "IntegrateRefused",
    "UsageError",
    "exit_code_for",
    "load_config",
    "main",
    "run",
]

_HOME = {
    "CheckConfig": "config",
    "Config": "config",
    "load_config": "configfile",
    "ConfigError": "errors",
    "IntegrateRefused": "errors",
    "UsageError": "errors",
    "exit_code_for": "errors",
    "main": "main",
    "run": "main",
}


# Hidden from type checkers: a module __getattr__ typed `-> Any` would make every
# name importable to mypy, so `from ... import Wirng` would type-check (issue 24).
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        home = _HOME.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{home}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
