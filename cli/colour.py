"""Colour for a person at a terminal, and only there.

Colour is on when the stream is a terminal, ``NO_COLOR`` is unset or empty
(https://no-color.org) and ``TERM`` is not ``dumb``. It only marks what the
eye should find first (the guidance code, the ``NEXT:`` commands, the error
prefix); the words are the same with or without it, and JSON is never coloured.
"""

from __future__ import annotations

import os
import re
from typing import TextIO

__all__ = ["enabled", "error_prefix", "paint"]

_CODE_LINE = re.compile(r"^[A-Z][A-Z_]+$")
_NEXT = "NEXT:"


def enabled(stream: TextIO) -> bool:
    """Whether text written to ``stream`` should be coloured."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def paint(text: str) -> str:
    """``text`` with the guidance code line in bold red and each ``NEXT:`` in bold green."""
    # click only where a line is painted: the read fast path (fastread.py) paints
    # text without one, and must not pay for click's import.
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        end = line[len(body) :]
        if _CODE_LINE.match(body):
            import click  # noqa: PLC0415

            body = click.style(body, fg="red", bold=True)
        elif body.startswith(_NEXT):
            import click  # noqa: PLC0415

            body = click.style(_NEXT, fg="green", bold=True) + body[len(_NEXT) :]
        out.append(body + end)
    return "".join(out)


def error_prefix(stream: TextIO) -> str:
    """``mergegate: error:``, in bold red when ``stream`` is coloured."""
    prefix = "mergegate: error:"
    import click  # noqa: PLC0415

    return click.style(prefix, fg="red", bold=True) if enabled(stream) else prefix
