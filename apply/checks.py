"""Running one configured check in a directory, in its own process group, with a timeout.

The group dies with the integrator. Beside the checks runs a *watcher*, a
tiny Python process reading a pipe whose write end only the integrator has:
each check's group is added to it (``+<pgid>``) once the check started, and
taken off (``-<pgid>``) once the integrator killed the group itself. When the
integrator dies (``kill -9``, a crash, the OOM killer), the kernel closes the
write end, the watcher reads end-of-file and kills every group still on its
list. This is portable POSIX (``prctl(PR_SET_PDEATHSIG)`` is Linux-only and
reaches only the direct child, not what the check started), needs no recovery
step and no recorded pgid. One watcher serves every check of the process (it
is started with the first, and again if it died): a Python start per check
cost tens of milliseconds of CPU, which concurrent checks of a chain fought
over. A process that leaves the group on purpose (``setsid``) is out of
reach, as it is for any supervisor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO

import attrs

from mergegate.statemachine import CheckAttempt, CheckResult, InvalidInput
from mergegate.statemachine._validation import check_text

__all__ = ["CheckSpec", "run_check", "run_retrying", "spec_tuple"]

_LOG = logging.getLogger("mergegate.transitions.checks")

# The output tail kept in evidence; CheckResult caps it again for storage.
_TAIL_BYTES = 16_384


def _argv(instance: CheckSpec, _a: object, value: tuple[str, ...]) -> None:
    if not value or not all(isinstance(part, str) and part for part in value):
        raise InvalidInput("check argv", value, "give a non-empty tuple of non-empty strings")
    for part in value:
        check_text(part, field="check argv")
        if "\x00" in part:
            raise InvalidInput("check argv", part, "remove the NUL character")
    if instance.shell and len(value) != 1:
        raise InvalidInput("check argv", value, "with shell=True give exactly one command string")


def _to_argv(value: Iterable[str]) -> tuple[str, ...]:
    # A typed converter (not the bare ``tuple``): mypy's attrs plugin takes the
    # __init__ parameter type from it, so ``CheckSpec("unit", ("python", "-m", "pytest"))``
    # and a list both type-check under --strict.
    return tuple(value)


def _timeout(_i: object, _a: object, value: float) -> None:
    if not value > 0:
        raise InvalidInput("check timeout", value, "give a positive number of seconds")


def _name(_i: object, _a: object, value: str) -> None:
    # Build a throwaway result so a bad name fails now, not after the check ran.
    CheckResult(name=value, exit_code=0)


def _retries(_i: object, _a: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise InvalidInput("check retries", value, "give an integer from 0 to 10")


@attrs.frozen
class CheckSpec:
    """One check: an argv list (no shell unless ``shell``), and a timeout in seconds.

    With ``shell=True``, ``argv`` is exactly one command string for ``/bin/sh -c``.
    """

    name: str = attrs.field(validator=_name)
    argv: tuple[str, ...] = attrs.field(converter=_to_argv, validator=_argv)
    timeout: float = attrs.field(default=600.0, validator=_timeout)
    shell: bool = attrs.field(default=False, kw_only=True)
    #: Runs again after a failure, at most this many times; a pass after a failure is flaky.
    retries: int = attrs.field(default=0, kw_only=True, validator=_retries)


def spec_tuple(value: Iterable[CheckSpec]) -> tuple[CheckSpec, ...]:
    """A typed converter for a field of checks (``attrs.field(converter=spec_tuple)``).

    The bare ``tuple`` types as ``Iterable[_T_co]`` under mypy's attrs plugin,
    so ``GitApplier(..., checks=[CheckSpec(...)])`` fails ``mypy --strict``;
    this one types as ``Iterable[CheckSpec]``.
    """
    return tuple(value)


# The watcher: keeps the groups it is told of; at end-of-file (the integrator
# is gone) kills those still listed. ``-I -S``: no site packages and no user
# paths, so it starts in a few milliseconds.
_WATCH = (
    "import os, signal, sys\n"
    "groups = set()\n"
    "for line in sys.stdin.buffer:\n"
    "    sign, group = line[:1], int(line[1:])\n"
    "    (groups.add if sign == b'+' else groups.discard)(group)\n"
    "for group in groups:\n"
    "    try:\n"
    "        os.killpg(group, signal.SIGKILL)\n"
    "    except OSError:\n"
    "        pass\n"
)


class _Watcher:
    """The one process that kills the checks' groups if the integrator dies (see the module)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = os.getpid()

    def watch(self, group: int) -> None:
        """Kill ``group`` if this process dies before :meth:`forget` is called for it."""
        self._tell(b"+%d\n" % group, start=True)

    def forget(self, group: int) -> None:
        """``group`` was killed here (and reaped): the watcher must not kill it later."""
        self._tell(b"-%d\n" % group, start=False)

    def _tell(self, line: bytes, *, start: bool) -> None:
        with self._lock:
            for _ in range(2):
                proc = self._running(start)
                if proc is None or proc.stdin is None:
                    return
                try:
                    # One short line is written whole: no reader sees half of it.
                    proc.stdin.write(line)
                    proc.stdin.flush()
                    return
                except OSError:
                    # It died (killed by someone): start another, which knows
                    # nothing of the earlier groups; only this one matters now.
                    self._proc = None

    def _running(self, start: bool) -> subprocess.Popen[bytes] | None:
        if self._pid != os.getpid():
            # A forked child must not share the parent's pipe.
            self._proc, self._pid = None, os.getpid()
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        if self._proc is None and start:
            try:
                self._proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _WATCH],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd="/",
                    # Its own session: a Ctrl-C at the integrator's terminal must not
                    # kill the watcher while the integrator lives on to finish the apply.
                    start_new_session=True,
                )
            except OSError:
                # No watcher: the check still dies with the integrator's own cleanup.
                return None
        return self._proc


_WATCHER = _Watcher()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(handle: IO[bytes]) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - _TAIL_BYTES))
    data = handle.read()
    if size > _TAIL_BYTES:
        # Drop the partial first line so the tail starts on a line boundary.
        data = data.partition(b"\n")[2] or data
    return data.decode("utf-8", "replace")


def run_check(
    spec: CheckSpec,
    cwd: Path,
    env: Mapping[str, str],
    tick: Callable[[], None] | None = None,
    tick_every: float = 30.0,
    started: Callable[[], None] | None = None,
) -> CheckResult:
    """Run ``spec`` in ``cwd`` and return its exit code and output tail.

    The check gets its own process group; the whole group is killed when the
    timeout expires, and after a normal exit too, so nothing it started lingers
    in a worktree that is about to be removed, and by the watcher if this
    process dies first (see the module). ``tick`` is called every
    ``tick_every`` seconds while the check runs; if it raises, the group is
    killed and the exception propagates. Never raises for a failing check: a
    command that cannot start is a failed result with exit code ``None``.

    ``started`` is called once the check runs, inside the region whose exit kills
    the group: whatever it lets raise (a stop signal) can no longer orphan the check.
    """
    argv = ["/bin/sh", "-c", spec.argv[0]] if spec.shell else list(spec.argv)
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as err:
            if started is not None:
                started()
            return CheckResult(spec.name, None, f"cannot start {argv[0]!r}: {err}")
        _WATCHER.watch(proc.pid)
        timed_out = False
        deadline = time.monotonic() + spec.timeout
        try:
            if started is not None:
                started()
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                try:
                    proc.wait(timeout=min(left, tick_every))
                    break
                except subprocess.TimeoutExpired:
                    if tick is not None and deadline > time.monotonic():
                        tick()
        finally:
            _kill_group(proc.pid)
            proc.wait()
            _WATCHER.forget(proc.pid)
        tail = _tail(out)
    if timed_out:
        tail += f"\n[mergegate: killed after the {spec.timeout:g}s timeout]"
        return CheckResult(spec.name, None, tail, timed_out=True)
    return CheckResult(spec.name, proc.returncode, tail)


def run_retrying(
    spec: CheckSpec,
    cwd: Path,
    env: Mapping[str, str],
    tick: Callable[[], None] | None = None,
    tick_every: float = 30.0,
    started: Callable[[], None] | None = None,
) -> CheckResult:
    """:func:`run_check`, run again after a failure up to ``spec.retries`` times, each logged.

    The result is the last run's, carrying the failed runs before it in
    ``retried``: a pass there is a flaky check, with both results kept.
    """
    earlier: list[CheckAttempt] = []
    while True:
        result = run_check(spec, cwd, env, tick, tick_every, started)
        if not result.failed or len(earlier) >= spec.retries:
            return attrs.evolve(result, retried=tuple(earlier)) if earlier else result
        earlier.append(CheckAttempt(result.exit_code, result.output_tail))
        _LOG.warning(
            "check %s failed (exit %s); retry %d of %d",
            spec.name,
            result.exit_code,
            len(earlier),
            spec.retries,
        )
        if tick is not None:
            tick()
