"""Durable file writes: fsync the data, then the directory that names it.

A rename is only durable once the directory holding the new name is synced,
so every helper here syncs the parent after it creates or renames an entry.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["fsync_dir", "replace_file", "write_new_file"]


def fsync_dir(path: Path) -> None:
    """Flush ``path``'s directory entries to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` (UTF-8) and fsync it; raise FileExistsError if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def replace_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: readers see the old file or the new one.

    The text goes to a temporary file beside ``path``, which is fsynced and then
    renamed over it with ``os.replace``; the directory is synced last.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
