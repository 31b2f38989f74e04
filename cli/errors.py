"""The errors only the command line raises, and the map from every error to an exit code.

Each is a :class:`~mergegate.statemachine.MergegateError` that also inherits
the builtin a caller would catch, as the core's errors do.
"""

from __future__ import annotations

import sys

from mergegate.statemachine import (
    CandidateNotFound,
    ConcurrencyConflict,
    ControlRefused,
    DuplicateCandidate,
    FollowUpNotResolved,
    IllegalTransition,
    InvalidInput,
    LeaseHeld,
    MergegateError,
    MoveInFlight,
    QueueDraining,
    QueuePaused,
    RepositoryError,
)

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_CONFLICT",
    "EXIT_OK",
    "HeldByBlocked",
    "EXIT_STORE_LOST",
    "EXIT_UNEXPECTED",
    "EXIT_USAGE",
    "ConfigError",
    "IntegrateRefused",
    "NotARepository",
    "SameShaRefused",
    "UsageError",
    "VerifyFailed",
    "error_code",
    "exit_code_for",
]

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_CONFLICT = 4
#: ``run`` gave up on its store (gone, or failing for a minute): see cli/standby.py.
EXIT_STORE_LOST = 5


class ConfigError(MergegateError, ValueError):
    """The configuration file is missing a value, has an unknown key or a wrong type."""

    path: str
    key: str

    def __init__(self, path: str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}", path=path, key=key)


class ConfigBrokenInRun(ConfigError):
    """The configuration changed under a running ``run`` and cannot be read: it waits.

    Nothing is taken meanwhile (a gate other than the file's would decide), and
    the edit is usually a person's, half done; at start-up the same is fatal.
    """

    def __init__(self, err: ConfigError) -> None:
        ConfigError.__init__(
            self,
            err.path,
            err.key,
            f"{str(err).split(': ', 2)[-1]} (the configuration changed under run, which takes "
            "nothing until it reads again)",
        )


class HeldByBlocked(DuplicateCandidate):
    """``submit`` of a slug that is blocked at another sha: the error names the commands."""

    def __init__(self, slug: str, existing: object, state: str) -> None:
        MergegateError.__init__(
            self,
            f"slug {slug!r} is {state} at {existing}; to try the new tip, fix the follow-up "
            f"and run `mergegate resume {slug}` (after `mergegate remediate {slug}` if it is "
            f'blocked), or run `mergegate withdraw {slug} --why "superseded"` and submit again',
            slug=slug,
            existing=existing,
        )


class StoreLost(MergegateError, RuntimeError):
    """``run`` gave up on its store: it failed, not merely busy, for ``patience`` seconds."""

    patience: float

    def __init__(self, last: str, patience: float) -> None:
        super().__init__(
            f"the store failed for more than {patience:g} s, last with: {last}; "
            "check the store (its file, or the database server with `mergegate --db URL list`), "
            "then start `mergegate run` again",
            patience=patience,
        )


class NotARepository(RepositoryError, ValueError):
    """``--repo`` (or the current directory) is not inside a git repository."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, f"{problem}; run mergegate inside a repository or pass --repo PATH")


class UsageError(MergegateError, ValueError):
    """The command line asked for something that cannot be done as given; nothing was written."""


class IntegrateRefused(MergegateError, ValueError):
    """``integrate`` was refused: ``main`` does not point at the sha, or it lacks the candidate."""

    main_sha: str

    def __init__(self, main_sha: str, problem: str) -> None:
        super().__init__(f"integrate refused for main {main_sha}: {problem}", main_sha=main_sha)


class SameShaRefused(MergegateError, ValueError):
    """``resume`` would retry the very sha a code reason blocked, with no word that the fix
    was outside the code; nothing was written."""

    slug: str
    sha: str

    def __init__(
        self, slug: str, sha: str, reason: str, branch: str, remote: str | None = None
    ) -> None:
        where = f"branch {branch}" if remote is None else f"branch {branch} on {remote}"
        fix = (
            f"commit the fix on {branch} first"
            if remote is None
            else f"push the fix to {branch} on {remote} first (resume fetches it)"
        )
        super().__init__(
            f"resume refused for {slug}: {where} is still at {sha[:12]}, the sha "
            f"blocked by {reason}; {fix}, or pass --same-sha "
            "--note TEXT if the fix was outside the code",
            slug=slug,
            sha=sha,
        )


class VerifyFailed(MergegateError, RuntimeError):
    """``verify`` found violations; they are listed on stdout."""

    count: int

    def __init__(self, count: int) -> None:
        super().__init__(
            f"verify found {count} violation(s), listed above; "
            "inspect them with `mergegate history` before changing anything",
            count=count,
        )


_USAGE = (
    InvalidInput,
    CandidateNotFound,
    DuplicateCandidate,
    ConfigError,
    UsageError,
    IntegrateRefused,
    NotARepository,
)
_CONFLICT = (
    IllegalTransition,
    ConcurrencyConflict,
    LeaseHeld,
    FollowUpNotResolved,
    SameShaRefused,
    MoveInFlight,
    ControlRefused,
    QueuePaused,
    QueueDraining,
)


def _contended(err: BaseException) -> bool:
    """Another mergegate process on this clone won git's ref lock on every fetch (exit 4).

    Read from ``sys.modules``, not imported: a FetchContended exists only once
    mergegate.apply.remote was loaded, and importing it here would load git's
    side into every command's start-up (docs/performance.md, "Command start-up").
    """
    remote = sys.modules.get("mergegate.apply.remote")
    return remote is not None and isinstance(err, remote.FetchContended)


def exit_code_for(err: BaseException) -> int:
    """The documented exit code of ``err`` (docs/cli.md, "Exit codes")."""
    if isinstance(err, _USAGE):
        return EXIT_USAGE
    if isinstance(err, _CONFLICT) or _contended(err):
        return EXIT_CONFLICT
    if isinstance(err, StoreLost):
        return EXIT_STORE_LOST
    return EXIT_UNEXPECTED


def error_code(err: BaseException) -> str:
    """A stable snake_case name of ``err``'s class, for the JSON error document."""
    name = type(err).__name__ if isinstance(err, MergegateError) else "unexpected"
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
