"""One long-running ``git cat-file --batch-check`` per applier, so lookups start no process.

A running ``cat-file`` reads refs and objects afresh on every request (loose
refs are re-read, ``packed-refs`` is re-validated by stat, a missed object
makes git rescan its packs), so its answers are as current as a new process's.
:class:`~.longrunning.LongRunning` keeps it running.
"""

from __future__ import annotations

import subprocess

from .git import Git
from .longrunning import LongRunning
from .plumbing import Lookup, parse_lookup

__all__ = ["CatFile"]


class CatFile:
    """Answers :class:`Lookup` questions through one ``git cat-file --batch-check``.

    Safe to share between threads. :meth:`close` stops the process; it is also
    stopped when the object is garbage-collected, and at interpreter exit.
    """

    def __init__(self, git: Git) -> None:
        self._running = LongRunning(git, "cat-file", "--batch-check")

    @property
    def _proc(self) -> subprocess.Popen[bytes] | None:
        return self._running.proc

    def lookup(self, *names: str) -> list[Lookup]:
        """Resolve every name, in order. Raises RepositoryError if git cannot answer."""
        request = "".join(f"{name}\n" for name in names).encode()
        lines = self._running.ask(request, len(names))
        return [
            parse_lookup(n, line.decode("utf-8", "surrogateescape").rstrip("\n"))
            for n, line in zip(names, lines, strict=True)
        ]

    def close(self) -> None:
        """Stop the process, if it runs. Safe to call twice."""
        self._running.close()
