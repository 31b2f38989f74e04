"""Plain-text columns and spans, with no import of click, attrs or the engine.

Shared by the full commands (``human.py``, ``listing.py``) and the fast read
path (``fastread.py``), which must not pay for those imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from mergegate.followups.text import one_line

__all__ = ["short_span", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column is not padded."""
    cells = [list(headers), *([one_line(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def short_span(span: timedelta) -> str:
    """A duration as an operator reads it: ``45s``, ``3m05s``, ``2h04m``, ``3d02h``."""
    seconds = max(int(span.total_seconds()), 0)
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    if days:
        return f"{days}d{h:02d}h"
    if hours:
        return f"{hours}h{m:02d}m"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"
