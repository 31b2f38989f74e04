"""The ``mergegate`` console script."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .fastread import answer

__all__ = ["main", "run"]

# The boundary's codes (boundary.py), which this module imports only when click runs.
_EXIT_INTERRUPTED = 130
_EXIT_BROKEN_PIPE = 141


def run(argv: Sequence[str] | None = None) -> int:
    """Run the command line through click (``boundary.run``) and return its exit code."""
    from .boundary import run as through_click  # noqa: PLC0415  (see main)

    return through_click(argv)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the command line, then exit with the documented code (docs/cli.md)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # `show`, `list` and `--version` in their plainest form skip click and the
        # engine (fastread.py); every other call, and any doubt, goes through click.
        fast = answer(args)
    except KeyboardInterrupt as err:
        from .output import report_error  # noqa: PLC0415

        sys.exit(
            report_error(
                "--json" in args, "mergegate", err, _EXIT_INTERRUPTED, "interrupted", "interrupted"
            )
        )
    if fast is None:
        code = run(args)
    else:
        try:
            code = _write(fast.text)
        except OSError:
            # Not a reader that went away (a full disk, a closed descriptor): the
            # full command reports it the way it reports any failure, in one line.
            code = run(args)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away after the last write; drop what is left quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = code or _EXIT_BROKEN_PIPE
    except OSError:
        # A stdout that cannot be written (a full disk): the command has already
        # said so in one line; drop what is left rather than fail again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = code or 1
    sys.exit(code)


def _write(text: str) -> int:
    """Write a fast answer as ``output.emit`` would; a closed stdout exits as the boundary says."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return _EXIT_BROKEN_PIPE
    return 0
