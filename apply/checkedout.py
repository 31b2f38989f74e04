"""Where ``main`` is checked out: asked of git, and asked again only when git's own files change.

The applier looks this up before each check and, under the fence, at each
move, because a person switches branches beside a long-lived ``run`` (a hunt
run caught a work tree that checked ``main`` out after ``run`` started, and
was never looked at again). Asking ``git worktree list`` each time cost two
git processes per candidate, more than a third of what the shell loop of
figure 9 spends on a whole candidate.

What decides the answer lives in a few small files git rewrites whole (by
renaming a lock file over them) whenever it changes: the ``HEAD`` of the main
work tree and of each linked one, each linked one's ``gitdir`` (where it is),
and the configuration, shared and per work tree (whether it is bare, where its
work tree is).
Their contents, read in microseconds, are the key: while they are the same
bytes, git would give the same answer, so git is asked again only when one
differs. Contents rather than times, so no change can hide inside one tick of
the file system's clock. mergegate's own scratch worktrees are left out of
the key and of the answer (they are never a person's checkout, and a check
moves their ``HEAD`` at every candidate).
"""

from __future__ import annotations

import os
from pathlib import Path

from .git import Git
from .worktree import list_worktrees

__all__ = ["CheckoutFinder"]

#: What ``HEAD`` holds in a repository whose refs live in a reftable (git 2.45+):
#: the file then says nothing about the branch, so nothing is remembered.
_REFTABLE_STUB = b"ref: refs/heads/.invalid\n"

#: A file's bytes, or ``None`` when it could not be read (gone, or being replaced).
_Key = tuple[tuple[str, bytes | None], ...]


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(65536)
    except OSError:
        return None


class CheckoutFinder:
    """The path of the work tree that has ``ref`` checked out, if any, for one repository."""

    def __init__(self, git: Git, common: Path, scratch: Path, ref: str) -> None:
        self._git = git
        self._common = common
        self._scratch = scratch.resolve()
        self._ref = ref
        self._key: _Key | None = None
        self._found: Path | None = None

    def find(self) -> Path | None:
        """Where ``ref`` is checked out now (never one of mergegate's scratch worktrees)."""
        # The key is read before git is asked: a change in between makes the
        # next key differ, so it is asked again then; never a stale answer kept.
        key = self._fingerprint()
        if key is not None and key == self._key:
            return self._found
        found = None
        for tree in list_worktrees(self._git):
            if tree.path.resolve().is_relative_to(self._scratch):
                continue
            if not tree.bare and tree.branch == self._ref:
                found = tree.path
                break
        self._key, self._found = key, found
        return found

    def _fingerprint(self) -> _Key | None:
        """The bytes of every file that decides the answer; ``None`` if they cannot decide it."""
        files = [
            ("HEAD", _read(self._common / "HEAD")),
            ("config", _read(self._common / "config")),
            ("config.worktree", _read(self._common / "config.worktree")),
        ]
        admin = self._common / "worktrees"
        try:
            entries = sorted(os.listdir(admin))
        except FileNotFoundError:
            entries = []
        except OSError:
            return None
        for entry in entries:
            gitdir = _read(admin / entry / "gitdir")
            if gitdir is not None and self._is_scratch(gitdir):
                continue
            files.append((f"{entry}/gitdir", gitdir))
            files.append((f"{entry}/HEAD", _read(admin / entry / "HEAD")))
            files.append((f"{entry}/config.worktree", _read(admin / entry / "config.worktree")))
        if any(content == _REFTABLE_STUB for name, content in files if name.endswith("HEAD")):
            return None
        return tuple(files)

    def _is_scratch(self, gitdir: bytes) -> bool:
        where = Path(os.fsdecode(gitdir.strip())).parent
        return where.is_relative_to(self._scratch)
