"""The errors only the git applier raises; each is a RepositoryError with its facts.

They live here, not in ``mergegate.statemachine.errors``, because only this
component knows about git processes.
"""

from __future__ import annotations

from collections.abc import Sequence

from mergegate.statemachine import RepositoryError

__all__ = ["CheckoutInUse", "GitCommandFailed", "GitNotFound", "MainCheckedOut", "RepositoryBusy"]


class GitNotFound(RepositoryError):
    """No ``git`` executable could be found; nothing was run."""

    executable: str

    def __init__(self, repository: str, executable: str) -> None:
        super().__init__(
            repository,
            f"the git executable {executable!r} was not found; install git or fix PATH",
        )
        self.executable = executable


class GitCommandFailed(RepositoryError):
    """A git command exited with a status the caller did not expect."""

    argv: tuple[str, ...]
    returncode: int
    stderr: str

    def __init__(self, repository: str, argv: Sequence[str], returncode: int, stderr: str) -> None:
        first = next((line for line in stderr.splitlines() if line.strip()), "no message")
        super().__init__(
            repository,
            f"`git {' '.join(argv[:2])}` failed with exit status {returncode}: {first}; "
            "check the repository with the same git command",
        )
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr


class MainCheckedOut(RepositoryError):
    """``main`` is checked out in a working tree with changes, which a move would leave stale."""

    worktree: str
    branch: str
    problem: str

    def __init__(self, repository: str, worktree: str, branch: str, problem: str) -> None:
        super().__init__(
            repository,
            f"branch {branch!r} is checked out in the working tree {worktree} and {problem}; "
            + self._advice(branch),
        )
        self.worktree = worktree
        self.branch = branch
        self.problem = problem

    @staticmethod
    def _advice(branch: str) -> str:
        return (
            "commit or stash there (a clean checkout is updated with main), or integrate in "
            f"a clone where {branch!r} is not checked out (e.g. `git clone --bare`)"
        )


class CheckoutInUse(MainCheckedOut):
    """A person is working in the checked-out ``main``: found at the move, so nothing moved.

    Unlike its parent (found before anything starts, and fatal to ``run``),
    this is the host's moment, not the candidate's fault: the apply is tried
    again once the work tree is clean, and ``run`` waits for it.
    """

    @staticmethod
    def _advice(branch: str) -> str:
        return "nothing moved: commit or stash there, and the candidate is applied again"


class RepositoryBusy(RepositoryError):
    """Another git process holds a lock mergegate needs (``index.lock``, ``main.lock``).

    Not a fault of the candidate being applied: nothing was moved, and the
    apply can be tried again once the lock is gone. ``lock`` is the lock file.
    """

    lock: str

    def __init__(self, repository: str, lock: str, stderr: str = "") -> None:
        first = next((line for line in stderr.splitlines() if line.strip()), "")
        super().__init__(
            repository,
            f"{lock} is held by another git process"
            + (f" ({first.strip()})" if first else "")
            + "; it is waited for, or remove it if no git process is running",
        )
        self.lock = lock
