"""Durable file writes that never follow a symlink, and the matching read.

A rename is only durable once the directory holding the new name is synced,
so every helper here syncs the parent after it creates or renames an entry.
Every open passes ``O_NOFOLLOW``: a name under the todos folder that is a
symlink is refused, never followed, so nothing outside can be read or written
through it.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import UnsafeFile

__all__ = ["fsync_dir", "read_regular", "replace_file", "write_new_file"]

# O_NONBLOCK: opening a FIFO planted under the name must fail fast, not hang the apply.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def read_regular(path: Path) -> bytes | None:
    """The bytes of the regular file ``path``; ``None`` if it does not exist.

    Raises UnsafeFile (and reads nothing) if ``path`` is a symlink or not a
    regular file, and OSError if it cannot be read.
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafeFile(str(path), "is a symlink") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise UnsafeFile(str(path), "is not a regular file")
        return handle.read()


def fsync_dir(path: Path) -> None:
    """Flush ``path``'s directory entries to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new_file(path: Path, text: str) -> None:
    """Create ``path`` with ``text`` (UTF-8) and fsync it; raise FileExistsError if it exists."""
    # O_EXCL alone already refuses an existing symlink; O_NOFOLLOW says so explicitly.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP or (err.errno == errno.EEXIST and path.is_symlink()):
            raise UnsafeFile(str(path), "is a symlink") from None
        raise
    with os.fdopen(fd, "wb") as handle:
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def replace_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: readers see the old file or the new one.

    The text goes to a temporary file beside ``path`` (``mkstemp`` creates it
    with ``O_EXCL | O_NOFOLLOW``), which is fsynced and then renamed over it
    with ``os.replace``; the directory is synced last. Raises UnsafeFile,
    writing nothing, if ``path`` is a symlink: replacing it would silently
    drop the link a human made.
    """
    if path.is_symlink():
        raise UnsafeFile(str(path), "is a symlink")
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
