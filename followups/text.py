"""Safe text for guidance lines and markdown: one-line escapes, code spans and fences."""

from __future__ import annotations

import re

__all__ = ["code_span", "fenced", "one_line", "yaml_quoted"]

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


def _visible(text: str) -> str:
    """``text`` with every non-printable character but newline and tab shown as an escape.

    Check output often holds terminal escapes and carriage returns; in a file a
    human reads, those would redraw the terminal or hide text. Backslashes stay
    as they are, so paths and tracebacks read naturally.
    """
    text = text.replace("\r\n", "\n")
    if all(ch.isprintable() or ch in "\n\t" for ch in text):
        return text
    out: list[str] = []
    for ch in text:
        if ch.isprintable() or ch in "\n\t":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def fenced(text: str, info: str = "text") -> str:
    """``text`` in a fenced block whose fence is longer than any backtick run inside it.

    Non-printable characters other than newline and tab are shown as escapes.
    """
    text = _visible(text)
    runs = [len(m) for m in _BACKTICKS.findall(text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}{info}\n{body}{fence}\n"


def yaml_quoted(value: str) -> str:
    """``value`` as a YAML double-quoted scalar that a YAML parser reads back exactly.

    Printable characters stay as they are; quotes, backslashes and everything
    else (control characters, line and paragraph separators, NEL) are escaped.
    """
    out: list[str] = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'
