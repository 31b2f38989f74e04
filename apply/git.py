"""The one way mergegate runs git: argv lists, a fixed environment, one error translation.

No value ever reaches a shell, and callers put ``--end-of-options`` before
every positional value, so no branch, path or sha can be read as an option.
Every command runs in a process group of its own. A terminal's Ctrl-C or
hangup, or ``kill -TERM -- -PGID`` (what a service manager sends), goes to
the whole group of ``mergegate``; a git in it died mid-move (a ``read-tree``
left half a merge in a person's work tree, and the candidate was blocked for
the files it left). Out of the group, the gits finish their step, and
mergegate's own handling ends them: the move completes before a stop is
obeyed, a cut-short read or merge kills its git, and a git whose mergegate
died ends as it always did (``update-ref`` and the kept gits on the end of
their stdin, a push with its parent, see ``_die_with_parent``).

Every command runs with the repository's hooks off (``-c core.hooksPath``
pointing at ``/dev/null``, unless the caller configures a hooks directory):
mergegate's plumbing is not a user's commit or checkout, and a hook inside
``update-ref`` (``reference-transaction``) or ``push`` (``pre-push``) would run
in the middle of a move of ``main``, where nothing may stall it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

from mergegate.statemachine import InvalidInput, RepositoryError
from mergegate.statemachine._validation import check_text

from .errors import GitCommandFailed, GitNotFound

__all__ = ["NO_HOOKS", "Git", "GitOutput", "Identity"]

# Variables a caller legitimately needs to reach a remote; every other GIT_*
# variable is dropped, so an inherited GIT_DIR or GIT_INDEX_FILE cannot point
# our commands at another repository.
_PASSTHROUGH = frozenset({"GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS", "GIT_SSL_CAINFO"})


#: The hooks directory of every command unless the caller names one: none at all.
NO_HOOKS = "/dev/null"

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec. A push that outlives a killed
    # mover could land after recovery settled the candidate; Linux can kill it
    # when its parent dies. Elsewhere (no prctl) the push simply is not tied.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _one_line(_i: object, a: attrs.Attribute[str], value: str) -> None:
    check_text(value, field=a.name)
    if not value.strip() or any(c in value for c in "\n\r\x00<>"):
        raise InvalidInput(a.name, value, "use one non-empty line without '<' or '>'")


@attrs.frozen
class Identity:
    """The author and committer of the merge commits mergegate makes."""

    name: str = attrs.field(default="mergegate", validator=_one_line)
    email: str = attrs.field(default="mergegate@localhost", validator=_one_line)


@attrs.frozen
class GitOutput:
    """What one git command returned."""

    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """Stdout as text, without its trailing newline."""
        return self.stdout.decode("utf-8", "replace").rstrip("\n")


def _environment(identity: Identity, ceiling: Path, base: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("GIT_") or k in _PASSTHROUGH}
    env.update(
        LC_ALL="C",
        LANG="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_CEILING_DIRECTORIES=str(ceiling),
        GIT_AUTHOR_NAME=identity.name,
        GIT_AUTHOR_EMAIL=identity.email,
        GIT_COMMITTER_NAME=identity.name,
        GIT_COMMITTER_EMAIL=identity.email,
    )
    return env


def _pidfd(pid: int) -> int | None:
    """A descriptor readable once ``pid`` exits (Linux 5.3 and later); ``None`` elsewhere."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class _Feed:
    """What is still to be written to git's stdin, a pipe's atomic write at a time."""

    def __init__(
        self, stdin: IO[bytes] | None, data: bytes | None, selector: selectors.BaseSelector
    ) -> None:
        self._stdin = stdin
        self._left = memoryview(data or b"")
        self._selector = selector
        self.fd = -1
        if stdin is not None and self._left:
            self.fd = stdin.fileno()
            selector.register(self.fd, selectors.EVENT_WRITE)
        elif stdin is not None:
            stdin.close()

    def write(self) -> None:
        try:
            self._left = self._left[os.write(self.fd, self._left[: select.PIPE_BUF]) :]
        except BrokenPipeError:  # git exited without reading it all: its status says why
            self._left = self._left[:0]
        if not self._left and self._stdin is not None:
            self._selector.unregister(self.fd)
            self._stdin.close()
            self.fd = -1


def _exchange(
    proc: subprocess.Popen[bytes], data: bytes | None, timeout: float
) -> tuple[bytes, bytes]:
    """``proc.communicate(data, timeout)``, without its sleeping wait for the exit.

    Once the pipes close, ``communicate`` polls for the exit with sleeps that
    start at a millisecond: on most short git commands it slept once, adding
    0.7 ms on average to each (a twentieth of a candidate in ``run``). Here
    the exit is waited for on the process's pidfd, which wakes at once.
    Raises TimeoutExpired (the process killed) like ``communicate``.
    """
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    assert proc.stderr is not None
    out, err = bytearray(), bytearray()
    sinks = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    pidfd = _pidfd(proc.pid)
    try:
        with selectors.DefaultSelector() as selector:
            for fd in [*sinks, pidfd]:
                if fd is not None:
                    selector.register(fd, selectors.EVENT_READ)
            feed = _Feed(proc.stdin, data, selector)
            # Done when every pipe is at its end, stdin is written and git has exited.
            while selector.get_map():
                left = deadline - time.monotonic()
                ready = selector.select(left) if left > 0 else []
                if not ready:
                    proc.kill()
                    proc.wait()
                    raise subprocess.TimeoutExpired(proc.args, timeout)
                for key, _events in ready:
                    if key.fd == feed.fd:
                        feed.write()
                    elif key.fd != pidfd and (chunk := os.read(key.fd, 65536)):
                        sinks[key.fd] += chunk
                    else:
                        selector.unregister(key.fd)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    # At once with a pidfd; without one (not Linux), subprocess's own wait.
    proc.wait(max(deadline - time.monotonic(), 0.001))
    return bytes(out), bytes(err)


@attrs.define
class Git:
    """Runs git in one repository. Every failure becomes a RepositoryError."""

    repo: Path
    identity: Identity = Identity()
    executable: str = "git"
    timeout: float = 300.0
    hooks_path: str = NO_HOOKS
    _argv0: str = attrs.field(init=False)
    _env: dict[str, str] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        found = shutil.which(self.executable)
        if found is None:
            raise GitNotFound(str(self.repo), self.executable)
        self._argv0 = found
        # The ceiling stops discovery at the repository itself, so a path that is
        # not a repository is an error instead of silently meaning its parent.
        self._env = _environment(self.identity, self.repo.parent, os.environ)

    def _argv(self, args: Sequence[str]) -> list[str]:
        return [self._argv0, "-c", f"core.hooksPath={self.hooks_path}", *args]

    def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        ok: Collection[int] = (0,),
        cwd: Path | None = None,
        timeout: float | None = None,
        die_with_parent: bool = False,
    ) -> GitOutput:
        """Run ``git <args>`` and return its output if its exit status is in ``ok``.

        With ``die_with_parent`` the command is killed if this process dies
        (Linux only). Raises GitCommandFailed for any other status, and
        RepositoryError when the command cannot run at all (missing directory,
        timeout, OS error).
        """
        where = cwd or self.repo
        with self._translated(args, where):
            proc = subprocess.Popen(
                self._argv(args),
                process_group=0,
                # prctl only, no lock taken between fork and exec (see _die_with_parent).
                preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=where,
                env=self._env,
            )
            with proc:
                try:
                    out, err = _exchange(proc, stdin, timeout or self.timeout)
                except BaseException:
                    # Cut short (a stop, Ctrl-C): the command goes too, as with subprocess.run.
                    proc.kill()
                    raise
        if proc.returncode not in ok:
            raise GitCommandFailed(
                str(self.repo), args, proc.returncode, err.decode("utf-8", "replace")
            )
        return GitOutput(proc.returncode, out, err)

    def spawn(self, *args: str, stderr: bool = False) -> subprocess.Popen[bytes]:
        """Start a long-running ``git <args>`` with piped stdin and stdout (and stderr).

        The caller owns the process and must close it. Raises RepositoryError
        if it cannot start.
        """
        with self._translated(args, self.repo):
            return subprocess.Popen(
                self._argv(args),
                process_group=0,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if stderr else subprocess.DEVNULL,
                cwd=self.repo,
                env=self._env,
            )

    @contextlib.contextmanager
    def _translated(self, args: Sequence[str], where: Path) -> Iterator[None]:
        # The one place where an OS-level failure to run git becomes a RepositoryError.
        try:
            yield
        except subprocess.TimeoutExpired as err:
            raise RepositoryError(
                str(self.repo),
                f"`git {' '.join(args[:2])}` did not finish in {err.timeout:g}s; "
                "check for a hung lock or a slow remote",
            ) from err
        except FileNotFoundError as err:
            if not where.is_dir():
                raise RepositoryError(
                    str(self.repo), f"directory {where} does not exist; check the repository path"
                ) from err
            raise GitNotFound(str(self.repo), self._argv0) from err
        except OSError as err:
            raise RepositoryError(str(self.repo), f"cannot run git: {err}") from err
