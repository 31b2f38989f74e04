"""Mark a withdrawn candidate's follow-up: ``status: withdrawn`` in its ``state.yaml``.

A withdrawn candidate will never be resumed, so its todo is not work to do any
more; the folder stays (its evidence is still worth reading) and only the
status line changes, so a human's other edits to the file are kept.
"""

from __future__ import annotations

import re
from pathlib import Path

from .contain import check_inside
from .fsio import read_regular, replace_file
from .paths import todo_path

__all__ = ["STATE_WITHDRAWN", "mark_withdrawn"]

STATE_WITHDRAWN = "withdrawn"

_STATUS = re.compile(r"^status:.*$", re.MULTILINE)


def mark_withdrawn(
    todos_root: Path, follow_up_slug: str, *, boundary: Path | None = None
) -> Path | None:
    """Set ``status: withdrawn`` in the follow-up's ``state.yaml``; return the file.

    ``None`` when the follow-up has no folder (its outbox row was not drained
    yet). The file is replaced atomically; a symlinked or non-regular
    ``state.yaml`` is refused (UnsafeFile) and left alone.
    """
    if boundary is not None:
        check_inside(boundary, todos_root, "todos")
    folder = todo_path(todos_root, follow_up_slug)
    path = folder / "state.yaml"
    raw = read_regular(path)
    if raw is None:
        return None
    text = raw.decode("utf-8")
    line = f"status: {STATE_WITHDRAWN}"
    updated, found = _STATUS.subn(line, text, count=1)
    if not found:
        updated = f"{line}\n{text}"
    if updated != text:
        replace_file(path, updated)
    return path
