"""A work tree where ``main`` is checked out: updated with ``main``, by git's own rule.

git's ``receive.denyCurrentBranch=updateInstead`` lets a push move a checked-out
branch only when that work tree is clean (its index and files match HEAD), and
then updates the index and files with a two-tree ``read-tree -u -m``. The
applier does the same, under the fence (git's lock on ``main``), so no commit
in that work tree can move ``main`` in between.
"""

from __future__ import annotations

from pathlib import Path

from .errors import GitCommandFailed, RepositoryBusy
from .git import Git

__all__ = ["checkout_problem", "update_checkout"]


def checkout_problem(tree: Git) -> str | None:
    """Why the work tree of ``tree`` may not be updated, or ``None`` when it is clean.

    Untracked files do not count (as for git's updateInstead); ``read-tree``
    itself refuses to overwrite one. Raises RepositoryBusy while another git
    process holds the index.
    """
    # Refresh first: a file touched but unchanged must not count as a change.
    try:
        tree.run("update-index", "-q", "--ignore-submodules", "--refresh", ok=(0, 1))
    except GitCommandFailed as err:
        # With -q git says nothing; a person's `git status` or an IDE holding
        # the index is the usual cause, and one to wait out, not to report as
        # a failed command with no message.
        lock = tree.run("rev-parse", "--path-format=absolute", "--git-path", "index.lock").text
        if Path(lock).exists():
            raise RepositoryBusy(str(tree.repo), lock, err.stderr) from None
        raise
    if tree.run("diff-files", "--quiet", "--ignore-submodules", ok=(0, 1)).returncode:
        return "its files differ from its index"
    staged = tree.run(
        "diff-index", "--quiet", "--cached", "--ignore-submodules", "HEAD", "--", ok=(0, 1)
    )
    if staged.returncode:
        return "its index differs from HEAD"
    return None


def update_checkout(tree: Git, old: str, new: str) -> None:
    """Move the index and files of ``tree`` from commit ``old`` to commit ``new``.

    A two-tree merge: every check runs before a file is written, so a refusal
    (a file changed since :func:`checkout_problem`, an untracked file in the
    way) leaves the work tree as it was. Raises GitCommandFailed then.
    """
    tree.run("read-tree", "-u", "-m", old, new)
