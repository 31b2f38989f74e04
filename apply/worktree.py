"""Scratch worktrees for checks: made under one known directory, always removed.

Each scratch worktree lives at ``<git-common-dir>/mergegate/worktrees/<pid>-<token>``.
The pid in the name is what lets :func:`cleanup_stale` tell the worktree of a
killed process from one still in use.

A :class:`WorktreePool` keeps them between checks while its owner runs (a
chain, ``mergegate run``): resetting a kept worktree costs two git processes
and no admin lock, against ``worktree add``, ``remove`` and ``prune`` (three,
serialized under :data:`_ADMIN`, with a full checkout and a full delete). A
kept worktree is named like any other, so a killed owner's are removed by
:func:`cleanup_stale` with the rest.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from mergegate.statemachine import MergegateError

from .errors import GitCommandFailed
from .git import Git
from .liveness import alive

__all__ = [
    "Worktree",
    "WorktreePool",
    "cleanup_stale",
    "common_dir",
    "list_worktrees",
    "scratch_root",
    "scratch_worktree",
]


@attrs.frozen
class Worktree:
    """One entry of ``git worktree list``: where it is and what it has checked out."""

    path: Path
    head: str | None
    branch: str | None
    bare: bool
    locked: bool


def _worktree_list(git: Git) -> str:
    # `git worktree add` creates worktrees/<id>/ before it writes the files in
    # it, and a concurrent `git worktree list` then fails reading them. Another
    # integrator's scratch worktree is exactly that, so retry a short while.
    # What a killed `add` left half-written stays broken, so that is repaired
    # (our own entries only) rather than waited for.
    for delay in (0.02, 0.05, 0.1, 0.2, 0.5):
        try:
            out = git.run("worktree", "list", "--porcelain", "-z").stdout
        except GitCommandFailed as err:
            if "worktrees/" not in err.stderr:
                raise
            if not _drop_half_made(git):
                time.sleep(delay)
        else:
            return out.decode("utf-8", "surrogateescape")
    return git.run("worktree", "list", "--porcelain", "-z").stdout.decode(
        "utf-8", "surrogateescape"
    )


def _drop_half_made(git: Git) -> bool:
    """Delete the admin entries of our scratch worktrees that a killed ``add`` left unusable.

    ``git worktree add`` writes ``gitdir`` and then truncates and writes
    ``commondir``; killed in between, it leaves an empty ``commondir``, and from
    then on every ``git worktree list`` (and so every integrator start) dies with
    "failed to read .../commondir", while ``git worktree prune`` keeps the entry.
    Only entries whose ``gitdir`` points into our scratch root and whose owning
    process is dead are touched. Returns whether one was deleted.
    """
    common = common_dir(git)
    root = scratch_root(common)
    admin = common / "worktrees"
    dropped = False
    for entry in sorted(admin.iterdir()) if admin.is_dir() else ():
        try:
            target = Path((entry / "gitdir").read_text().strip()).parent
            empty = (entry / "commondir").stat().st_size == 0
        except (OSError, UnicodeDecodeError):
            continue
        pid_text = target.name.partition("-")[0]
        if target.parent != root or not empty or not pid_text.isdigit():
            continue
        if alive(int(pid_text), None):
            continue
        with _ADMIN:
            shutil.rmtree(entry, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)
        dropped = True
    return dropped


def list_worktrees(git: Git) -> list[Worktree]:
    """Every worktree git knows of, the main one first."""
    raw = _worktree_list(git)
    found: list[Worktree] = []
    for record in raw.split("\0\0"):
        fields = [f for f in record.split("\0") if f]
        if not fields:
            continue
        attrs_ = dict(f.partition(" ")[::2] for f in fields)
        found.append(
            Worktree(
                path=Path(attrs_.get("worktree", "")),
                head=attrs_.get("HEAD"),
                branch=attrs_.get("branch"),
                bare="bare" in attrs_,
                locked="locked" in attrs_,
            )
        )
    return found


def common_dir(git: Git) -> Path:
    """The repository's common git directory, as an absolute path."""
    out = git.run("rev-parse", "--path-format=absolute", "--git-common-dir").text
    return Path(out)


def scratch_root(git_common_dir: Path) -> Path:
    """The one directory under which every scratch worktree of this repository lives."""
    return git_common_dir / "mergegate" / "worktrees"


_OID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

#: Held around ``worktree add``, ``remove`` and ``prune`` of this process: a prune
#: that runs while another thread's add has made ``worktrees/<name>/`` but not yet
#: written its ``gitdir`` drops the entry, and the add fails ("could not open
#: 'worktrees/<name>/gitdir' for writing"). A speculative chain's links add and
#: remove worktrees on several threads at once; seen at rate 0.3, concurrency 4.
#: A remove of the last entry deletes the then empty ``worktrees/`` itself, and an
#: add between making it and making ``worktrees/<name>`` fails ("could not create
#: directory of 'worktrees/<name>'"); seen by the chain property test under load.
_ADMIN = threading.Lock()


@contextlib.contextmanager
def scratch_worktree(git: Git, root: Path, commit: str) -> Iterator[Path]:
    """Yield a detached worktree of ``commit``; remove it on exit, whatever happened.

    Hooks are off while it is made: a checkout hook of the repository must not
    run with mergegate's privileges.
    """
    path = _add(git, root, commit)
    try:
        yield path
    finally:
        _remove(git, path)


def _add(git: Git, root: Path, commit: str) -> Path:
    """A new detached worktree of ``commit`` under ``root``; removed again if the add fails."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{os.getpid()}-{secrets.token_hex(6)}"
    try:
        with _ADMIN:
            git.run(
                "-c",
                "core.hooksPath=/dev/null",
                "worktree",
                "add",
                "--detach",
                "--quiet",
                "--end-of-options",
                str(path),
                commit,
            )
    except BaseException:
        _remove(git, path)
        raise
    return path


@attrs.define(eq=False)
class WorktreePool:
    """Scratch worktrees kept for the next check while :meth:`reusing` is active.

    Outside :meth:`reusing`, :meth:`worktree` is :func:`scratch_worktree`. Inside,
    a worktree given back is kept (after the processes still running in it are
    killed), and the next :meth:`worktree` resets it to its commit so that
    nothing of the check before can reach the next one:

    - the ``.git`` file is written again and git is pointed at the worktree's
      own admin directory explicitly, so a check that rewrote ``.git`` cannot
      aim the reset at another repository;
    - its index is deleted if it is not exactly the file the last reset left
      (same inode, size, mtime and ctime, which no one can set back): a flag a
      check set there (``skip-worktree``) would make ``checkout`` keep a
      changed file, and without an index every file is written afresh. An
      index no check wrote is kept, and then ``checkout`` rewrites only the
      files whose stat data changed (ctime included, whatever the
      repository's configuration says);
    - ``checkout --detach --force``: never moves a branch, even one the check
      checked out in it (a ``reset --hard`` would move that branch);
    - ``clean -ffdx``: every untracked and ignored file goes.

    Any failure there removes that worktree and makes a new one. Safe to use
    from several threads.
    """

    git: Git
    root: Path
    _idle: list[Path] = attrs.field(factory=list, init=False)
    _users: int = attrs.field(default=0, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    #: Each kept worktree's index as the last reset (or add) left it.
    _index: dict[Path, tuple[int, ...] | None] = attrs.field(factory=dict, init=False)

    @contextlib.contextmanager
    def reusing(self) -> Iterator[None]:
        """Keep worktrees between checks until the outermost ``reusing`` ends; then remove them."""
        with self._lock:
            self._users += 1
        try:
            yield
        finally:
            self.drain(leaving=True)

    def drain(self, *, leaving: bool = False) -> None:
        """Remove the kept worktrees (once the last user leaves, with ``leaving``)."""
        with self._lock:
            if leaving:
                self._users -= 1
            if self._users and leaving:
                return
            idle, self._idle = self._idle, []
        for path in idle:
            self._index.pop(path, None)
            _remove(self.git, path)

    @contextlib.contextmanager
    def worktree(self, commit: str) -> Iterator[Path]:
        """Yield a detached worktree of ``commit``, kept or removed afterwards; see the class."""
        path = self._take(commit)
        try:
            yield path
        finally:
            self._give(path)

    def _take(self, commit: str) -> Path:
        while True:
            with self._lock:
                path = self._idle.pop() if self._idle else None
            if path is None:
                path = _add(self.git, self.root, commit)
                self._index[path] = _signature(self._admin(path) / "index")
                return path
            if self._reset(path, commit):
                return path
            _remove(self.git, path)

    def _give(self, path: Path) -> None:
        with self._lock:
            keep = self._users > 0
        if not keep:
            self._index.pop(path, None)
            _remove(self.git, path)
            return
        # A check's group was killed when it ended; what left the group on
        # purpose must not live on to write into the next candidate's tree.
        _kill_processes_in(path)
        with self._lock:
            if self._users > 0:
                self._idle.append(path)
                return
        self._index.pop(path, None)
        _remove(self.git, path)

    def _admin(self, path: Path) -> Path:
        return self.root.parent.parent / "worktrees" / path.name

    def _reset(self, path: Path, commit: str) -> bool:
        """Bring a kept worktree to exactly ``commit``'s tree; ``False`` if it cannot be trusted."""
        admin = self._admin(path)
        index = admin / "index"
        left = self._index.pop(path, None)
        if _OID.fullmatch(commit) is None:
            # checkout takes no --end-of-options: only an object id may reach it.
            return False
        try:
            if Path((admin / "gitdir").read_text().strip()) != path / ".git":
                return False
            (path / ".git").write_text(f"gitdir: {admin}\n")
            if left is None or _signature(index) != left:
                index.unlink(missing_ok=True)
            where = (f"--git-dir={admin}", f"--work-tree={path}", *_STRICT_STAT)
            self.git.run(*where, "checkout", "--detach", "--force", "--quiet", commit)
            self.git.run(*where, "clean", "-ffdxq")
            self._index[path] = _signature(index)
        except (OSError, UnicodeDecodeError, MergegateError):
            return False
        return True


#: A changed file is told by its own stat data, whatever the repository
#: configures: ctime and the executable bit, which a check cannot set back,
#: count, and no cache (a file system monitor, the untracked cache, a shared
#: index file) vouches for a file instead.
_STRICT_STAT = tuple(
    arg
    for setting in (
        "core.trustctime=true",
        "core.checkStat=default",
        "core.fileMode=true",
        "core.fsmonitor=false",
        "core.untrackedCache=false",
        "core.splitIndex=false",
    )
    for arg in ("-c", setting)
)


def _signature(path: Path) -> tuple[int, ...] | None:
    """What tells a file rewritten since: inode, size, mtime and ctime; ``None`` if absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _remove(git: Git, path: Path, *, strict: bool = False) -> None:
    # `worktree remove` may leave the directory (a check wrote into it, or git
    # never registered it); whatever it leaves is deleted, and `prune` then
    # drops the administrative entry. In a `finally`, failures are swallowed so
    # that they cannot hide the exception that is already on its way out.
    with contextlib.suppress(Exception), _ADMIN:
        git.run("worktree", "remove", "--force", "--force", "--end-of-options", str(path))
    shutil.rmtree(path, ignore_errors=True)
    with _ADMIN:
        if strict:
            git.run("worktree", "prune")
        else:
            with contextlib.suppress(Exception):
                git.run("worktree", "prune")


def _kill_processes_in(path: Path) -> None:
    """SIGKILL every process whose working directory is inside ``path``.

    A check runs in its own session, so when the integrator is killed its check
    lives on, in a worktree that is about to be deleted, and would keep running
    (and writing) for as long as its timeout allowed, or forever. Where there is
    no ``/proc`` this finds nothing.
    """
    prefix = str(path)
    proc = Path("/proc")
    if not proc.is_dir():
        return
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.removesuffix(" (deleted)") == prefix or cwd.startswith(prefix + "/"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def cleanup_stale(git: Git, root: Path) -> list[Path]:
    """Remove the scratch worktrees whose owning process is gone; return their paths.

    Checks still running in such a worktree (their integrator was killed) are
    killed first. A worktree whose name does not start with a pid is also
    removed: nothing of ours makes such a name.
    """
    # Both sources count: a process killed inside `worktree add` can leave a
    # registered (and locked) entry without a directory, or a directory that
    # git never registered.
    candidates = {w.path for w in list_worktrees(git) if w.path.resolve().parent == root}
    if root.is_dir():
        candidates.update(root.iterdir())
    removed: list[Path] = []
    for path in sorted(candidates):
        pid_text = path.name.partition("-")[0]
        if pid_text.isdigit() and alive(int(pid_text), None):
            continue
        _kill_processes_in(path)
        with contextlib.suppress(Exception):
            git.run("worktree", "unlock", "--end-of-options", str(path))
        _remove(git, path, strict=True)
        removed.append(path)
    if not removed:
        with _ADMIN:
            git.run("worktree", "prune")
    return removed
