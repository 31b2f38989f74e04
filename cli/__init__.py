"""The ``mergegate`` command line: the composition root that wires every component.

Nothing imports this package. Its public surface is the console script
(``mergegate = mergegate.cli.main:main``), documented in docs/cli.md, and the
configuration loader, for tools that want to read ``mergegate.toml`` the same way.
"""

from .config import CheckConfig, Config, load_config
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
