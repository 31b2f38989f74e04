"""Reading a live process's output in tests without losing a line, and failing with what was seen.

``select()`` followed by ``readline()`` on a buffered pipe loses lines: when two lines arrive
in one chunk, the second sits in Python's buffer where ``select()`` never sees it again.
Here one thread per stream does unbuffered ``os.read`` until end of file and splits lines
itself, so every byte the process wrote is seen exactly once, whatever the chunking.
Every wait names what it waited for and every line it saw when it fails.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol

__all__ = ["LiveOutput", "all_ready", "wait_until"]

# How often a wait re-checks a condition that is not about the output (a file, a row).
_POLL = 0.02


class _Stream:
    """One stream's text so far, filled by its reader thread."""

    def __init__(self, name: str, fd: int, changed: threading.Condition) -> None:
        self.name = name
        self.text = ""
        self.closed = False
        self.cursor = 0  # lines already handed out by wait_for
        self._fd = fd
        self._changed = changed
        self._thread = threading.Thread(target=self._pump, name=f"procio-{name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:  # EIO: a pty whose follower side is gone is at its end
                chunk = b""
            with self._changed:
                self.text += decoder.decode(chunk, final=not chunk)
                if not chunk:
                    self.closed = True
                self._changed.notify_all()
            if not chunk:
                return

    def lines(self) -> list[str]:
        """Complete lines (and, once closed, the unterminated tail), without line ends."""
        parts = self.text.split("\n")
        if parts[-1] == "" or not self.closed:
            parts.pop()
        return [p.removesuffix("\r") for p in parts]

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()


class Process(Protocol):
    """What is read of a running process: ``subprocess.Popen``, or one forked by a zygote."""

    @property
    def pid(self) -> int: ...
    @property
    def args(self) -> Any: ...
    @property
    def stdin(self) -> IO[Any] | None: ...
    @property
    def stdout(self) -> IO[Any] | None: ...
    @property
    def stderr(self) -> IO[Any] | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


class LiveOutput:
    """The streams of a running process, each drained by its own thread from the start.

    Once a stream is watched here, nothing else may read it (no ``communicate()``):
    use :meth:`finish` for the exit code and the whole output.
    """

    def __init__(
        self,
        proc: Process | None = None,
        *,
        fds: dict[str, int] | None = None,
        what: str | None = None,
    ) -> None:
        self.proc = proc
        self._changed = threading.Condition()
        self._streams: dict[str, _Stream] = {}
        named = dict(fds or {})
        if proc is not None:
            for name in ("stdout", "stderr"):
                pipe = getattr(proc, name)
                if pipe is not None:
                    named[name] = pipe.fileno()
        for name, fd in named.items():
            self._streams[name] = _Stream(name, fd, self._changed)
        if what is None:
            what = shlex.join(str(a) for a in proc.args) if proc is not None else "process"
        self.what = what

    def text(self, stream: str = "stdout") -> str:
        """Everything read from ``stream`` so far."""
        with self._changed:
            return self._streams[stream].text

    def closed(self, stream: str = "stdout") -> bool:
        """Whether ``stream`` reached its end (the writer exited or closed it)."""
        with self._changed:
            return self._streams[stream].closed

    def lines(self, stream: str = "stdout") -> list[str]:
        """Every line read from ``stream`` so far."""
        with self._changed:
            return self._streams[stream].lines()

    def report(self, tail: int = 200) -> str:
        """What every stream showed (the last ``tail`` lines of each), and the process state."""
        with self._changed:
            parts = [self._state()]
            for s in self._streams.values():
                lines = s.lines()
                shown = lines[-tail:]
                end = "closed" if s.closed else "open"
                if len(shown) < len(lines):
                    head = f"--- {s.name} ({end}; last {tail} of {len(lines)} lines) ---"
                else:
                    head = f"--- {s.name} ({end}; {len(lines)} lines) ---"
                parts.append(head)
                parts.extend(f"| {line}" for line in shown)
                if not s.closed and not s.text.endswith("\n") and s.text:
                    parts.append(f"| {s.text.rsplit(chr(10), 1)[-1]!r} (no line end yet)")
            return "\n".join(parts)

    def _state(self) -> str:
        if self.proc is None:
            return f"{self.what}"
        code = self.proc.poll()
        running = "still running" if code is None else f"exited {code}"
        return f"{self.what} (pid {self.proc.pid}, {running})"

    def wait_for(
        self,
        needle: str | Callable[[str], bool],
        *,
        count: int = 1,
        stream: str = "stdout",
        timeout: float = 30.0,
    ) -> list[str]:
        """Wait until ``count`` new lines on ``stream`` match; return the new lines up to the last.

        "New" means after the lines an earlier ``wait_for`` on this stream returned, so
        successive waits read forward as a reader of the stream would. Fails at once when
        the stream ends first, and after ``timeout`` seconds otherwise, with every line seen.
        """
        match = (lambda line: needle in line) if isinstance(needle, str) else needle
        described = repr(needle) if isinstance(needle, str) else getattr(needle, "__name__", "?")
        s = self._streams[stream]
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                lines = s.lines()
                found = 0
                for i in range(s.cursor, len(lines)):
                    found += bool(match(lines[i]))
                    if found >= count:
                        got = lines[s.cursor : i + 1]
                        s.cursor = i + 1
                        return got
                left = deadline - time.monotonic()
                if s.closed or left <= 0:
                    why = f"{stream} ended" if s.closed else f"{timeout:g} s passed"
                    raise AssertionError(
                        f"waited for {count} line(s) matching {described} on {stream} "
                        f"(after line {s.cursor}); {why}; saw {found}.\n{self.report()}"
                    )
                self._changed.wait(left)

    def wait_text(
        self, done: Callable[[str], bool], what: str, *, stream: str = "stdout", timeout: float = 30
    ) -> str:
        """Wait until ``done(text so far)`` holds, partial lines included (a terminal's redraws)."""
        s = self._streams[stream]
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(s.text):
                left = deadline - time.monotonic()
                if s.closed or left <= 0:
                    why = f"{stream} ended" if s.closed else f"{timeout:g} s passed"
                    raise AssertionError(f"waited for {what}; {why}.\n{self.report()}")
                self._changed.wait(left)
            return s.text

    def ended(self, stream: str = "stdout", timeout: float = 30.0) -> str:
        """Wait for ``stream``'s end (the writer exited or closed it); all its text."""
        s = self._streams[stream]
        if not self.arrives(lambda: s.closed, timeout):
            raise AssertionError(f"waited {timeout:g} s for the end of {stream}.\n{self.report()}")
        return self.text(stream)

    def arrives(self, done: Callable[[], bool], timeout: float) -> bool:
        """Whether ``done()`` holds within ``timeout`` s, re-checked on output and every 20 ms."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, _POLL))
            return True

    def until(self, done: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        """Wait for ``done()`` (re-checked on output and every 20 ms), or fail naming ``what``."""
        if not self.arrives(done, timeout):
            raise AssertionError(f"waited {timeout:g} s for {what}.\n{self.report()}")

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        """Wait for the exit and every stream's end; the exit code, all of stdout and stderr.

        Fails after ``timeout`` with what was seen, killing the process so no test leaves one.
        """
        assert self.proc is not None, "finish() needs a process"
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"waited {timeout:g} s for the exit.\n{self.report()}") from None
        deadline = time.monotonic() + timeout
        for s in self._streams.values():
            if not s.join(max(0.0, deadline - time.monotonic())):
                # A grandchild kept the pipe open after the process exited.
                raise AssertionError(f"{s.name} still open after the exit.\n{self.report()}")
        self._close_pipes()
        out = self.text("stdout") if "stdout" in self._streams else ""
        err = self.text("stderr") if "stderr" in self._streams else ""
        return code, out, err

    def kill(self) -> None:
        """SIGKILL the process (if still there) and reap it; the streams drain to their end."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait()

    def _close_pipes(self) -> None:
        assert self.proc is not None
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def __enter__(self) -> LiveOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        # A failed assertion must not leave the child running into a later test.
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
        ended = [s.join(5) for s in self._streams.values()]
        # A pipe still read by its thread (a grandchild holds it open) is left to the
        # daemon thread: closing it under a blocked os.read could read a reused descriptor.
        if self.proc is not None and all(ended):
            self._close_pipes()


def wait_until(
    done: Callable[[], Any],
    what: str | Callable[[], str],
    timeout: float = 30.0,
    *,
    alive: Iterable[LiveOutput] = (),
) -> Any:
    """Poll ``done()`` every 20 ms until it returns something truthy; return that.

    On timeout fail with ``what`` (a callable is called then, to read the state at that
    moment) and the output seen so far of every process in ``alive``.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = done()
        if got:
            return got
        if time.monotonic() >= deadline:
            said = what() if callable(what) else what
            seen = "".join(f"\n{out.report()}" for out in alive)
            raise AssertionError(f"waited {timeout:g} s for {said}{seen}")
        time.sleep(_POLL)


def all_ready(
    procs: Iterable[subprocess.Popen[Any]], line: str, timeout: float = 60
) -> list[LiveOutput]:
    """Watch every process and wait until each has printed ``line`` (a start barrier).

    A fixed sleep before releasing racers lets a loaded machine release them before
    they are waiting, so the race the test means to run never happens.
    """
    lives = [LiveOutput(proc) for proc in procs]
    try:
        for live in lives:
            live.wait_for(lambda seen: seen == line, timeout=timeout)
    except BaseException:
        for live in lives:
            live.__exit__(None, None, None)
        raise
    return lives
