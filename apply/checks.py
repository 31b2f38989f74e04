"""Running one configured check in a directory, in its own process group, with a timeout."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO

import attrs

from mergegate.statemachine import CheckResult, InvalidInput, check_text

__all__ = ["CheckSpec", "run_check", "spec_tuple"]

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


@attrs.frozen
class CheckSpec:
    """One check: an argv list (no shell unless ``shell``), and a timeout in seconds.

    With ``shell=True``, ``argv`` is exactly one command string for ``/bin/sh -c``.
    """

    name: str = attrs.field(validator=_name)
    argv: tuple[str, ...] = attrs.field(converter=_to_argv, validator=_argv)
    timeout: float = attrs.field(default=600.0, validator=_timeout)
    shell: bool = attrs.field(default=False, kw_only=True)


def spec_tuple(value: Iterable[CheckSpec]) -> tuple[CheckSpec, ...]:
    """A typed converter for a field of checks (``attrs.field(converter=spec_tuple)``).

    The bare ``tuple`` types as ``Iterable[_T_co]`` under mypy's attrs plugin,
    so ``GitApplier(..., checks=[CheckSpec(...)])`` fails ``mypy --strict``;
    this one types as ``Iterable[CheckSpec]``.
    """
    return tuple(value)


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
) -> CheckResult:
    """Run ``spec`` in ``cwd`` and return its exit code and output tail.

    The check gets its own process group; the whole group is killed when the
    timeout expires, and after a normal exit too, so nothing it started lingers
    in a worktree that is about to be removed. ``tick`` is called every
    ``tick_every`` seconds while the check runs; if it raises, the group is
    killed and the exception propagates. Never raises for a failing check: a
    command that cannot start is a failed result with exit code ``None``.
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
            return CheckResult(spec.name, None, f"cannot start {argv[0]!r}: {err}")
        timed_out = False
        deadline = time.monotonic() + spec.timeout
        try:
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
        tail = _tail(out)
    if timed_out:
        tail += f"\n[mergegate: killed after the {spec.timeout:g}s timeout]"
        return CheckResult(spec.name, None, tail, timed_out=True)
    return CheckResult(spec.name, proc.returncode, tail)
