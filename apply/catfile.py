"""One long-running ``git cat-file --batch-check`` per applier, so lookups start no process.

Starting git costs milliseconds; asking a running ``cat-file`` costs a pipe
round trip. A running ``cat-file`` reads refs and objects afresh on every
request (loose refs are re-read, ``packed-refs`` is re-validated by stat, a
missed object makes git rescan its packs), so its answers are as current as a
new process's. The process is restarted if the repository directory was
replaced, if it died, and in a forked child (which must not share its pipes).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import weakref
from typing import IO

from mergegate.statemachine import RepositoryError

from .git import Git
from .plumbing import Lookup, parse_lookup

__all__ = ["CatFile"]


def _shutdown(proc: subprocess.Popen[bytes]) -> None:
    # EOF on stdin makes cat-file exit; kill it only if it does not.
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class CatFile:
    """Answers :class:`Lookup` questions through one ``git cat-file --batch-check``.

    Safe to share between threads. :meth:`close` stops the process; it is also
    stopped when the object is garbage-collected, and at interpreter exit.
    """

    def __init__(self, git: Git) -> None:
        self._git = git
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopper: weakref.finalize[[subprocess.Popen[bytes]], CatFile] | None = None
        self._dir_id: tuple[int, int] | None = None
        self._pid = os.getpid()

    def lookup(self, *names: str) -> list[Lookup]:
        """Resolve every name, in order. Raises RepositoryError if git cannot answer."""
        request = "".join(f"{name}\n" for name in names).encode()
        with self._lock:
            for attempt in (1, 2):
                stdin, stdout = self._running()
                try:
                    stdin.write(request)
                    stdin.flush()
                    lines = [stdout.readline() for _ in names]
                except OSError:
                    lines = []
                if all(line.endswith(b"\n") for line in lines) and len(lines) == len(names):
                    return [
                        parse_lookup(n, line.decode("utf-8", "surrogateescape").rstrip("\n"))
                        for n, line in zip(names, lines, strict=True)
                    ]
                self._stop()
                if attempt == 2:
                    break
        raise RepositoryError(
            str(self._git.repo), "git cat-file stopped answering; check the repository"
        )

    def close(self) -> None:
        """Stop the process, if it runs. Safe to call twice."""
        with self._lock:
            self._stop()

    def _running(self) -> tuple[IO[bytes], IO[bytes]]:
        try:
            st = os.stat(self._git.repo)
        except OSError as err:
            self._stop()
            raise RepositoryError(
                str(self._git.repo), f"the repository is gone ({err.strerror})"
            ) from err
        dir_id = (st.st_dev, st.st_ino)
        if self._pid != os.getpid():
            # A forked child shares the parent's pipes; answers would interleave.
            # Leave the parent's process to the parent and start our own.
            if self._stopper is not None:
                self._stopper.detach()
            self._proc, self._stopper, self._pid = None, None, os.getpid()
        if self._proc is not None and (dir_id != self._dir_id or self._proc.poll() is not None):
            self._stop()
        if self._proc is None:
            self._proc = self._git.spawn("cat-file", "--batch-check")
            self._stopper = weakref.finalize(self, _shutdown, self._proc)
            self._dir_id = dir_id
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None:  # pragma: no cover - spawn always pipes both
            raise RepositoryError(str(self._git.repo), "git cat-file has no pipes")
        return stdin, stdout

    def _stop(self) -> None:
        if self._stopper is not None:
            self._stopper()
        self._proc = None
        self._stopper = None
