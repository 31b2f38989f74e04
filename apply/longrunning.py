"""One long-running git process answering line by line, so a question starts no process.

Starting git costs milliseconds; asking a running one costs a pipe round trip.
:class:`LongRunning` owns such a process (``cat-file --batch-check``,
``hash-object --stdin-paths``): it starts it on the first question, and starts
it again if the repository directory was replaced, if it died, or in a forked
child (which must not share its pipes). Each git command it runs re-reads what
it answers from afresh on every line, so its answers are as current as a new
process's.

Every answer has the deadline every other git command has (``Git.timeout``). A
kept git that stops answering (stopped with SIGSTOP, stuck on a hung file
system) is killed at the deadline and asked again in a new process, once; a
second silence is a RepositoryError. Without the deadline one stalled git held
the integrator for as long as it stayed stalled.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
import time
import weakref
from typing import IO

from mergegate.statemachine import RepositoryError

from .git import Git

__all__ = ["LongRunning", "end"]


def end(proc: subprocess.Popen[bytes]) -> None:
    """Close ``proc``'s pipes and reap it: EOF on stdin makes these gits exit (an
    ``update-ref`` aborting what it had prepared); killed only if it does not."""
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LongRunning:
    """``git <args>`` kept running; :meth:`ask` writes a request and reads whole lines back.

    Safe to share between threads. :meth:`close` stops the process; it is also
    stopped when the object is garbage-collected, and at interpreter exit.
    """

    def __init__(self, git: Git, *args: str) -> None:
        self._git = git
        self._args = args
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopper: weakref.finalize[[subprocess.Popen[bytes]], LongRunning] | None = None
        self._dir_id: tuple[int, int] | None = None
        self._pid = os.getpid()

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The running process, if one was started (for tests and liveness checks)."""
        return self._proc

    def ask(self, request: bytes, lines: int) -> list[bytes]:
        """Send ``request`` and return ``lines`` lines of answer, each with its newline.

        A process that stops answering, or does not answer within the git
        timeout, is started again once and asked again (every request here may
        be repeated: each is a lookup, or writes an object named by its
        content). Raises RepositoryError if git still cannot answer.
        """
        with self._lock:
            for attempt in (1, 2):
                stdin, stdout = self._running()
                try:
                    stdin.write(request)
                    stdin.flush()
                    answer = self._read_lines(stdout.fileno(), lines)
                except OSError:
                    answer = None
                except BaseException:
                    # Cut short (a stop signal of `run`): the answer still owed would
                    # be read as the next question's, so the process goes with it.
                    self._kill()
                    raise
                if answer is not None:
                    return answer
                self._kill()
                if attempt == 2:
                    break
        raise RepositoryError(
            str(self._git.repo),
            f"git {self._args[0]} stopped answering (twice, or for {self._git.timeout:g}s); "
            "check the repository",
        )

    def _read_lines(self, fd: int, lines: int) -> list[bytes] | None:
        """``lines`` whole lines from ``fd``, or None at end of file or at the deadline.

        Reads the raw descriptor: these gits answer only what was asked, so no
        byte of a later answer is ever read ahead.
        """
        deadline = time.monotonic() + self._git.timeout
        data = b""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while data.count(b"\n") < lines:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            data += chunk
        # Split on LF only: an echoed name may hold a CR, which splitlines would cut at.
        return [line + b"\n" for line in data.split(b"\n")[:lines]]

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
            self._proc = self._git.spawn(*self._args)
            self._stopper = weakref.finalize(self, end, self._proc)
            self._dir_id = dir_id
        stdin, stdout = self._proc.stdin, self._proc.stdout
        if stdin is None or stdout is None:  # pragma: no cover - spawn always pipes both
            raise RepositoryError(str(self._git.repo), f"git {self._args[0]} has no pipes")
        return stdin, stdout

    def _kill(self) -> None:
        # Silent or dead: a stopped process would not exit on EOF, so it is killed first.
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        self._stop()

    def _stop(self) -> None:
        if self._stopper is not None:
            self._stopper()
        self._proc = None
        self._stopper = None
