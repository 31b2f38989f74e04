"""Materialize a follow-up todo folder atomically, or reuse the one already there.

The six files are written and fsynced in a temporary folder inside the todos
folder, then the folder is renamed into place. A rename is atomic, so a reader
(or a crash) sees either no folder or a complete one, never half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import attrs

from mergegate.statemachine import BlockedRecord, BlockedReport, CandidateKey, MergegateError

from .errors import FollowUpConflict
from .fsio import fsync_dir, write_new_file
from .paths import todo_path
from .templates import GuidanceTemplates
from .todo_text import render_todo

__all__ = ["ScaffoldResult", "read_source", "scaffold_todo"]

_SOURCE_FIELDS = ("slug", "branch", "sha")


@attrs.frozen
class ScaffoldResult:
    """The todo folder, and whether this call created it (``False``: it was reused)."""

    path: Path
    created: bool


def _unspan(value: str) -> str:
    ticks = len(value) - len(value.lstrip("`"))
    inner = value[ticks:-ticks] if ticks and value.endswith("`" * ticks) else value
    if len(inner) >= 2 and inner.startswith(" ") and inner.endswith(" "):
        inner = inner[1:-1]
    return inner


def read_source(folder: Path) -> CandidateKey | None:
    """The candidate that ``folder/input.md`` links in its Source section, or ``None``.

    ``None`` means the folder has no readable, valid linkage: no input.md, no
    Source section, or values that are not a valid identity.
    """
    try:
        text = (folder / "input.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found: dict[str, str] = {}
    in_source = False
    for line in text.splitlines():
        if line.startswith("## "):
            in_source = line == "## Source"
            continue
        for name in _SOURCE_FIELDS:
            prefix = f"- {name}: "
            if in_source and name not in found and line.startswith(prefix):
                found[name] = _unspan(line[len(prefix) :])
    if set(found) != set(_SOURCE_FIELDS):
        return None
    try:
        return CandidateKey(found["slug"], found["branch"], found["sha"])
    except MergegateError:
        return None


def _reuse(target: Path, key: CandidateKey) -> ScaffoldResult:
    found = read_source(target)
    if found != key:
        raise FollowUpConflict(str(target), key, found)
    return ScaffoldResult(target, created=False)


def scaffold_todo(
    todos_root: Path,
    record: BlockedRecord,
    report: BlockedReport,
    templates: GuidanceTemplates | None = None,
) -> ScaffoldResult:
    """Create ``<todos_root>/<record.follow_up_slug>/`` with its six files, or reuse it.

    An existing folder whose ``input.md`` links ``record.key`` is reused
    untouched. The todos folder is created if missing. Raises FollowUpConflict
    if the folder exists and links another candidate (or none), PathOutsideTodos
    if it would lie outside the todos folder, and OSError if the filesystem
    refuses (read-only, full, ``todos_root`` is a file).
    """
    root = Path(todos_root)
    root.mkdir(parents=True, exist_ok=True)
    target = todo_path(root, record.follow_up_slug)
    if target.exists() or target.is_symlink():
        return _reuse(target, record.key)
    files = render_todo(record, report, templates)
    tmp = Path(tempfile.mkdtemp(prefix=f".{record.follow_up_slug}.", suffix=".tmp", dir=root))
    try:
        for name, text in files.items():
            write_new_file(tmp / name, text)
        fsync_dir(tmp)
        # mkdtemp makes the folder 0o700; a todo folder is as readable as any other.
        os.chmod(tmp, 0o755)  # noqa: S103
        try:
            os.rename(tmp, target)
        except OSError:
            # Another writer renamed its complete folder into place first.
            if target.is_dir():
                return _reuse(target, record.key)
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(target.parent)
    return ScaffoldResult(target, created=True)
