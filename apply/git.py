"""The one way mergegate runs git: argv lists, a fixed environment, one error translation.

No value ever reaches a shell, and callers put ``--end-of-options`` before
every positional value, so no branch, path or sha can be read as an option.
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
import shutil
import signal
import subprocess
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

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
            done = subprocess.run(
                self._argv(args),
                preexec_fn=_die_with_parent if die_with_parent else None,
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
                capture_output=True,
                cwd=where,
                env=self._env,
                timeout=timeout or self.timeout,
                check=False,
            )
        if done.returncode not in ok:
            raise GitCommandFailed(
                str(self.repo), args, done.returncode, done.stderr.decode("utf-8", "replace")
            )
        return GitOutput(done.returncode, done.stdout, done.stderr)

    def spawn(self, *args: str, stderr: bool = False) -> subprocess.Popen[bytes]:
        """Start a long-running ``git <args>`` with piped stdin and stdout (and stderr).

        The caller owns the process and must close it. Raises RepositoryError
        if it cannot start.
        """
        with self._translated(args, self.repo):
            return subprocess.Popen(
                self._argv(args),
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
