"""Merge commits written through one long-running git, without a process per commit.

``git commit-tree`` is a process per merge commit: milliseconds, on the path of
every candidate. :class:`CommitWriter` writes the same object through one
running ``git hash-object -w -t commit --no-filters --stdin-paths``: it lays
the commit out as ``commit-tree`` would (tree, parents, author and committer
with the time now, the message verbatim), puts it in a private scratch file
and names the file on the process's stdin; git writes the object and
answers with its id. (git 2.39 checks no commit format here: the layout is
ours, built only from ids git gave and a message of checked text, and a test
compares its ids with ``commit-tree``'s for the same moment.)

The identity lines come from git itself, once per writer (``git var
GIT_COMMITTER_IDENT``, which applies git's own clean-up of a name), with the
time replaced by the moment of each commit. Where ``commit-tree`` would lay
the object out otherwise (an ``encoding`` header for an ``i18n.commitEncoding``
other than git's ``utf-8`` or ``utf8``; a repeated parent, which it drops), or
where the scratch file's path cannot go on a line (a newline in ``$TMPDIR``),
the writer runs ``commit-tree`` itself. (``commit-tree`` signs only when asked
with ``-S``, which mergegate never asks: ``commit.gpgSign`` does not reach it,
nor this.) The setting is read when the writer first writes: a change to it
takes effect when the integrator starts again. A scratch file removed under a
running writer (a ``/tmp`` cleaner) is made again.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
import time
import weakref

from mergegate.statemachine import RepositoryError

from .git import Git
from .longrunning import LongRunning
from .plumbing import commit_tree

__all__ = ["CommitWriter", "identity_at"]

# What `git var GIT_COMMITTER_IDENT` prints: "Name <email> <epoch> <+hhmm>".
_IDENT = re.compile(r"(?P<who>.+ <[^<>]*>) -?\d+ [+-]\d{4}")
_SHA = re.compile(rb"[0-9a-f]{40}(?:[0-9a-f]{24})?\n")


def identity_at(who: str, epoch: int) -> str:
    """``who`` at ``epoch`` in git's header form, with this host's offset from UTC then.

    The offset is the one git prints for a commit made at that moment: the
    local time zone's, in ``+hhmm`` (minutes kept, as for India's +0530).
    """
    offset = time.localtime(epoch).tm_gmtoff
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    return f"{who} {epoch} {sign}{minutes // 60:02d}{minutes % 60:02d}"


def _remove(path: str, fd: int, owner: int) -> None:
    if os.getpid() != owner:
        return  # a forked child's exit: the file is its parent's
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(path)


class CommitWriter:
    """Writes commit objects in ``git``'s repository; see the module's docstring.

    Safe to share between threads. :meth:`close` stops the process and removes
    the scratch file; both also happen when the object is garbage-collected.
    """

    def __init__(self, git: Git) -> None:
        self._git = git
        self._lock = threading.Lock()
        self._running = LongRunning(git, "hash-object", "-w", "-t", "commit", "--no-filters",
                                    "--stdin-paths")  # fmt: skip
        # None until the first write decides; then the identity, or "" for commit-tree.
        self._who: str | None = None
        self._scratch: tuple[str, int] | None = None  # the scratch file and its descriptor
        self._pid = os.getpid()
        self._finalizer: weakref.finalize[[str, int, int], CommitWriter] | None = None

    def write(self, tree: str, parents: tuple[str, ...], message: str) -> str:
        """Write a commit of ``tree`` with ``parents`` and ``message``; return its id.

        Raises RepositoryError if git refuses the object or stops answering.
        """
        with self._lock:
            who = self._identity()
            if not who or len(set(parents)) != len(parents):
                return commit_tree(self._git, tree, parents, message)
            ident = identity_at(who, int(time.time()))
            lines = [f"tree {tree}\n", *(f"parent {p}\n" for p in parents)]
            body = "".join([*lines, f"author {ident}\n", f"committer {ident}\n", "\n", message])
            data = body.encode("utf-8", "surrogateescape")
            found = self._scratch_file()
            if found is None:
                return commit_tree(self._git, tree, parents, message)
            scratch, fd = found
            # Rewritten in place through a kept descriptor: opening with O_TRUNC
            # makes ext4 flush the file on close (auto_da_alloc), 2 ms a commit here.
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            answer = self._running.ask(scratch.encode() + b"\n", 1)[0]
        if not _SHA.fullmatch(answer):
            raise RepositoryError(str(self._git.repo), "git hash-object gave no commit id")
        return answer.decode().rstrip("\n")

    def close(self) -> None:
        """Stop the process and remove the scratch file. Safe to call twice."""
        self._running.close()
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._scratch = self._finalizer = None

    def _identity(self) -> str:
        if self._who is None:
            self._who = self._decide()
        return self._who

    def _decide(self) -> str:
        """The committer identity without its time, or "" where commit-tree must write."""
        encoding = self._git.run("config", "--get", "i18n.commitEncoding", ok=(0, 1)).text
        # git's own test (is_encoding_utf8): only these two names, in any case.
        if encoding and encoding.lower() not in ("utf-8", "utf8"):
            return ""
        # Both identities are the same here: Git sets author and committer alike.
        found = _IDENT.fullmatch(self._git.run("var", "GIT_COMMITTER_IDENT").text)
        return "" if found is None else found["who"]

    def _scratch_file(self) -> tuple[str, int] | None:
        """The scratch file and its descriptor, made again if it was removed; ``None``
        where its path cannot be named on git's stdin (a newline in ``$TMPDIR``)."""
        if not self._scratch_usable():
            if self._finalizer is not None:
                if self._pid == os.getpid():
                    self._finalizer()  # ours, removed under us: close the descriptor
                else:
                    self._finalizer.detach()  # a forked child's is its parent's
            fd, path = tempfile.mkstemp(prefix="mergegate-commit-")
            path = os.path.abspath(path)
            self._pid = os.getpid()
            self._scratch = (path, fd)
            self._finalizer = weakref.finalize(self, _remove, path, fd, self._pid)
        assert self._scratch is not None
        return None if any(c in self._scratch[0] for c in "\n\r") else self._scratch

    def _scratch_usable(self) -> bool:
        """Whether this process made the scratch file and it is still there (a /tmp
        cleaner or an operator may have removed it)."""
        if self._scratch is None or self._pid != os.getpid():
            return False
        try:
            return os.fstat(self._scratch[1]).st_nlink > 0
        except OSError:
            return False
