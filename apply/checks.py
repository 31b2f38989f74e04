"""Running one configured check in a directory, in its own process group, with a timeout.

The group dies with the integrator. Beside each check runs a *watcher*, a
tiny Python process holding the read end of a pipe whose write end only the
integrator has. When the check ends, the integrator kills the group and then
writes one byte, and the watcher exits quietly; when the integrator dies
first (``kill -9``, a crash, the OOM killer), the kernel closes the write end,
the watcher reads end-of-file and kills the check's whole process group.
This is portable POSIX (``prctl(PR_SET_PDEATHSIG)`` is Linux-only and reaches
only the direct child, not what the check started), needs no recovery step
and no recorded pgid, and costs one short-lived process per check, started
beside the check rather than before it. A process that leaves the group on
purpose (``setsid``) is out of reach, as it is for any supervisor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO

import attrs

from mergegate.statemachine import CheckAttempt, CheckResult, InvalidInput, check_text

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


# The watcher: waits on the pipe; end-of-file without the "done" byte means the
# integrator died, so the check's group (argv[2]) is killed. ``-I -S``: no site
# packages and no user paths, so it starts in a few milliseconds.
_WATCH = (
    "import os, signal, sys\n"
    "fd, group = int(sys.argv[1]), int(sys.argv[2])\n"
    "try:\n"
    "    done = os.read(fd, 1)\n"
    "except OSError:\n"
    "    done = b''\n"
    "if not done:\n"
    "    try:\n"
    "        os.killpg(group, signal.SIGKILL)\n"
    "    except OSError:\n"
    "        pass\n"
)


@attrs.define
class _Watcher:
    """The process that kills a check's group if the integrator dies (see the module)."""

    proc: subprocess.Popen[bytes] | None
    write_end: int

    @classmethod
    def start(cls, group: int) -> _Watcher:
        read_end, write_end = os.pipe()
        try:
            proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCH, str(read_end), str(group)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(read_end,),
                # Its own session: a Ctrl-C at the integrator's terminal must not
                # kill the watcher while the integrator lives on to finish the apply.
                start_new_session=True,
            )
        except OSError:
            # No watcher: the check still dies with the integrator's own cleanup.
            proc = None
        finally:
            os.close(read_end)
        return cls(proc, write_end)

    def done(self) -> None:
        """The group was killed by the integrator: let the watcher go without killing."""
        with contextlib.suppress(OSError):
            os.write(self.write_end, b"x")
        os.close(self.write_end)
        if self.proc is not None:
            self.proc.wait()


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
        watcher = _Watcher.start(proc.pid)
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
            watcher.done()
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
