"""Safe text for guidance lines and markdown: one-line escapes, code spans and fences."""

from __future__ import annotations

import re

__all__ = ["code_span", "fenced", "one_line"]

_BACKTICKS = re.compile(r"`+")


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line: backslashes and every line-breaking or control character escaped.

    Anything ``str.splitlines`` would break on is escaped, so the result can
    never start a line of its own (a forged ``NEXT:`` line, say). Text longer
    than ``limit`` is cut with a visible ``[... N more characters]`` marker.
    """
    out: list[str] = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    escaped = "".join(out)
    if len(escaped) > limit:
        return f"{escaped[:limit]}[... {len(escaped) - limit} more characters]"
    return escaped


def code_span(text: str) -> str:
    """``text`` as a markdown code span that no backtick inside it can close early."""
    text = one_line(text, limit=10_000)
    runs = [len(m) for m in _BACKTICKS.findall(text)]
    ticks = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def fenced(text: str, info: str = "text") -> str:
    """``text`` in a fenced block whose fence is longer than any backtick run inside it."""
    runs = [len(m) for m in _BACKTICKS.findall(text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}{info}\n{body}{fence}\n"
