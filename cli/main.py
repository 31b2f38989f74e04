"""The ``mergegate`` console script."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .boundary import EXIT_BROKEN_PIPE, run

__all__ = ["main", "run"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line, then exit with the documented code (docs/cli.md)."""
    code = run(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away after the last write; drop what is left quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = code or EXIT_BROKEN_PIPE
    sys.exit(code)
