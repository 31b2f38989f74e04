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


def _index_lock(tree: Git) -> Path:
    return Path(tree.run("rev-parse", "--path-format=absolute", "--git-path", "index.lock").text)


def checkout_problem(tree: Git) -> str | None:
    """Why the work tree of ``tree`` may not be updated, or ``None`` when it is clean.

    Untracked files do not count (as for git's updateInstead); ``read-tree``
    itself refuses to overwrite one. Raises RepositoryBusy while another git
    process holds the index.

    It takes no lock and writes nothing: ``run`` asks it again and again while
    a person edits that work tree, and a refresh of the index (which takes
    ``index.lock``) made the person's own ``git checkout`` or ``git add`` fail
    now and then with "index.lock: File exists" (the soak's people and a hunt
    run hit it). ``git --no-optional-locks status`` is what editors use for
    that: it compares a touched but unchanged file by content, in memory.
    """
    lock = _index_lock(tree)
    if lock.exists():
        # A person's git (or an editor of `git commit`) holds the index: wait it out.
        raise RepositoryBusy(str(tree.repo), str(lock), "")
    out = tree.run(
        "--no-optional-locks",
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=no",
        "--ignore-submodules=all",
    ).text
    staged = changed = False
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 3:
            continue
        index, files = entry[0], entry[1]
        staged = staged or index not in " ?!"
        changed = changed or files not in " ?!"
        if index in "RC":
            next(entries, None)  # a rename's or copy's source path follows
    if changed:
        return "its files differ from its index"
    if staged:
        return "its index differs from HEAD"
    return None


def update_checkout(tree: Git, old: str, new: str) -> None:
    """Move the index and files of ``tree`` from commit ``old`` to commit ``new``.

    A two-tree merge: every check runs before a file is written, so a refusal
    (a file changed since :func:`checkout_problem`, an untracked file in the
    way) leaves the work tree as it was. Raises GitCommandFailed then. The
    index is refreshed first (a touched but unchanged file must not stop
    ``read-tree``): the one moment it takes ``index.lock``, at a move.
    """
    try:
        tree.run("update-index", "-q", "--ignore-submodules", "--refresh", ok=(0, 1))
    except GitCommandFailed as err:
        # With -q git says nothing; a person's git holding the index is the
        # usual cause, one to wait out (nothing moved), not a refusal.
        lock = _index_lock(tree)
        if lock.exists():
            raise RepositoryBusy(str(tree.repo), str(lock), err.stderr) from None
        raise
    tree.run("read-tree", "-u", "-m", old, new)
