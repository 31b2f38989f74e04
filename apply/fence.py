"""The fence: git's own lock on ``main``, held open while the lease is checked and main moves.

A move of ``main`` and a recovery must never interleave. Both take the same
mutex, git's ``refs/heads/main.lock``, through an open ``git update-ref --stdin
-z`` transaction (``start``, ``update`` or ``verify``, ``prepare``). While it is
prepared, no other git process can move ``main``, and no other mergegate mover
or recoverer can take the lock. The transaction ends in ``commit`` or ``abort``;
if the process holding it dies, git sees its stdin close and aborts.

Each holder writes a record (``<git-common-dir>/mergegate/movers/<host>-<pid>``)
naming itself and its git child before it asks for the lock, so a recoverer
that finds the lock taken can tell a live holder from a dead one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import attrs

from mergegate.statemachine import MoveInFlight, RepositoryError

from .errors import GitCommandFailed
from .git import Git
from .liveness import alive as _alive
from .liveness import start_time as _start_time
from .liveness import stopped as _stopped
from .liveness import this_host as _host
from .updater import UPDATE_REF, Updater

__all__ = ["MainLock", "Moved", "Taken", "break_if_stale", "lock_path", "take_main"]

_ZERO = "0" * 40


@attrs.frozen
class Moved:
    """``main`` was not where the caller expected; nothing is held."""

    stderr: str


@attrs.frozen
class Taken:
    """``main.lock`` exists: another process holds (or a dead one left) the lock."""

    stderr: str


def lock_path(common_dir: Path, ref: str) -> Path:
    """Where git's lock for ``ref`` lives (the files ref backend)."""
    return common_dir / f"{ref}.lock"


@attrs.frozen
class _Record:
    host: str
    pid: int
    started: str | None
    git_pid: int | None
    git_started: str | None

    @property
    def name(self) -> str:
        return f"{self.host}:{self.pid}"

    def alive(self) -> bool:
        """Whether the holder or its git child still runs (unknown hosts count as alive)."""
        if self.host != _host():
            return True
        if _alive(self.pid, self.started):
            return True
        return self.git_pid is not None and _alive(self.git_pid, self.git_started)


def _records(folder: Path) -> list[tuple[Path, _Record]]:
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            found.append((path, _Record(**data)))
        except (OSError, ValueError, TypeError):
            # Half-written by a holder killed mid-write: it held nothing yet.
            continue
    return found


def _write_record(folder: Path, record: _Record) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    # The git child's pid keeps two holders in one process (a harness) apart.
    path = folder / f"{record.host}-{record.pid}-{record.git_pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(attrs.asdict(record), sort_keys=True))
    os.replace(tmp, path)
    return path


#: This process's start time, read once per pid (a forked child reads its own):
#: it never changes, and every move would otherwise read ``/proc`` for it again.
_OWN_START: dict[int, str | None] = {}


def _own_start() -> str | None:
    pid = os.getpid()
    if pid not in _OWN_START:
        _OWN_START[pid] = _start_time(pid)
    return _OWN_START[pid]


def _close(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


class MainLock:
    """A prepared ``update-ref --stdin`` transaction on one ref: the lock is held.

    End it with :meth:`commit` (only for an ``update``) or :meth:`abort`;
    leaving it as a context manager aborts unless it was committed.
    """

    def __init__(
        self,
        git: Git,
        proc: subprocess.Popen[bytes],
        record: Path,
        spare: Updater | None = None,
    ) -> None:
        self._git = git
        self._proc = proc
        self._record = record
        self._spare = spare
        self._done = False

    def _finish(self, command: bytes) -> tuple[bytes, int]:
        if self._spare is not None:
            return self._finish_spare(self._spare, command)
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._done = True
        code: int | None = None
        try:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.write(command)
                self._proc.stdin.close()
            out = self._proc.stdout.read()
            err = self._proc.stderr.read()
            code = self._proc.wait()
        finally:
            _close(self._proc)
            self._ended(code)
        if code != 0:
            raise self._failed(code, err)
        return out, code

    def _ended(self, code: int | None) -> None:
        """The git is done: its record goes, unless a signal killed it holding the locks."""
        if code is not None and code < 0:
            self._orphan_locks()
        else:
            self._record.unlink(missing_ok=True)

    def _failed(self, code: int, err: bytes) -> GitCommandFailed:
        return GitCommandFailed(
            str(self._git.repo), ("update-ref", "--stdin"), code, err.decode("utf-8", "replace")
        )

    def _finish_spare(self, spare: Updater, command: bytes) -> tuple[bytes, int]:
        """:meth:`_finish` in the Updater's process: one answer line, then the next spare starts.

        The answered process exits by itself (its stdin closes) off the move's path.
        """
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._done = True
        try:
            try:
                self._proc.stdin.write(command)
                self._proc.stdin.flush()
                answer = self._proc.stdout.readline()
            except OSError:
                answer = b""
        except BaseException:
            # Cut short: the process goes (EOF: git aborts), so no answer is left owed.
            self._record.unlink(missing_ok=True)
            spare.drop(self._proc)
            raise
        if answer.endswith(b": ok\n"):
            self._record.unlink(missing_ok=True)
            spare.done(self._proc)
            return answer, 0
        # git refused (it exits on any error): its verdict is on stderr.
        with contextlib.suppress(OSError):
            self._proc.stdin.close()
        err = self._proc.stderr.read()
        code = self._proc.wait()
        spare.drop(self._proc)
        self._ended(code)
        raise self._failed(code, err)

    def _orphan_locks(self) -> None:
        """Hand the locks of a git killed by a signal over to recovery.

        The dead git could not remove its locks, and this process will never
        use them again. Without a record they would look like an operator's
        lock (removed only by hand); with this one, naming only the dead git,
        recovery sees a dead mover and may break them.
        """
        with contextlib.suppress(OSError, ValueError, TypeError):
            record = _Record(**json.loads(self._record.read_text()))
            if record.git_pid is not None:
                dead = attrs.evolve(record, pid=record.git_pid, started=record.git_started)
                _write_record(self._record.parent, dead)
                if dead.pid != record.pid:
                    self._record.unlink(missing_ok=True)

    def commit(self) -> None:
        """Make the update; raises GitCommandFailed if git could not."""
        out, _ = self._finish(b"commit\0")
        if b"commit: ok" not in out:
            raise GitCommandFailed(
                str(self._git.repo), ("update-ref", "--stdin"), 0, "commit was not acknowledged"
            )

    def abort(self) -> None:
        """Release the lock; the ref stays where it was. Safe to call twice."""
        if not self._done:
            self._finish(b"abort\0")

    def __enter__(self) -> MainLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.abort()


def take_main(
    git: Git,
    common_dir: Path,
    ref: str,
    old: str,
    new: str | None = None,
    *,
    spare: Updater | None = None,
) -> MainLock | Moved | Taken:
    """Take ``ref``'s lock, checking that it points at ``old`` (and will move to ``new``).

    With ``spare``, its process runs the transaction when it is free (no
    git starts on the move's path). Returns the held :class:`MainLock`, or :class:`Moved` /
    :class:`Taken` when git refused to prepare; raises GitCommandFailed for any
    other failure.
    """
    taken = None if spare is None else spare.take()
    if taken is None:
        spare = None
        proc = git.spawn(*UPDATE_REF, stderr=True)
        started = _start_time(proc.pid)
    else:
        proc, started = taken
    record = _write_record(
        common_dir / "mergegate" / "movers",
        _Record(_host(), os.getpid(), _own_start(), proc.pid, started),
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    if new is None:
        request = f"start\0verify {ref}\0{old}\0prepare\0"
    else:
        request = f"start\0update {ref}\0{new}\0{old}\0prepare\0"
    try:
        proc.stdin.write(request.encode())
        proc.stdin.flush()
        acks = [proc.stdout.readline(), proc.stdout.readline()]
    except BrokenPipeError:
        acks = [b"", b""]
    except BaseException:
        if spare is not None:
            # Cut short mid-answer: the process goes (EOF: git aborts).
            record.unlink(missing_ok=True)
            spare.drop(proc)
        raise
    if acks == [b"start: ok\n", b"prepare: ok\n"]:
        return MainLock(git, proc, record, spare)
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.close()
    err = proc.stderr.read().decode("utf-8", "replace")
    code = proc.wait()
    if spare is not None:
        spare.drop(proc)
    else:
        _close(proc)
    record.unlink(missing_ok=True)
    if "File exists" in err:
        return Taken(err)
    if "but expected" in err or "unable to resolve reference" in err or "reference already" in err:
        return Moved(err)
    raise GitCommandFailed(str(git.repo), ("update-ref", "--stdin"), code, err)


def take_main_waiting(
    git: Git,
    common_dir: Path,
    ref: str,
    old: str,
    new: str | None,
    *,
    wait: float,
    spare: Updater | None = None,
) -> MainLock | Moved | Taken:
    """:func:`take_main`, retried while the lock is taken, for up to ``wait`` seconds.

    A recoverer holds the lock only for a moment; a mover must not fail for that.
    """
    deadline = time.monotonic() + wait
    while True:
        taken = take_main(git, common_dir, ref, old, new, spare=spare)
        if not isinstance(taken, Taken) or time.monotonic() >= deadline:
            return taken
        time.sleep(0.05)


def _head_lock(common_dir: Path, ref: str) -> Path | None:
    """``HEAD.lock`` when ``HEAD`` names ``ref`` (a bare repository on ``main``).

    git then locks ``HEAD`` too, for its reflog, whenever it locks ``ref``: a
    killed ``update-ref`` leaves both locks, and ``ref`` stays unmovable until
    both are gone.
    """
    try:
        head = (common_dir / "HEAD").read_text().strip()
    except OSError:
        return None
    return common_dir / "HEAD.lock" if head == f"ref: {ref}" else None


def break_if_stale(git: Git, common_dir: Path, ref: str) -> Path | None:
    """Remove ``ref``'s lock if every mergegate process that could hold it is dead.

    Call only when no lease covers a move (none is live). Returns the removed
    lock's path (``None`` if it was already gone). Raises MoveInFlight when the
    holder is alive, on another host, or not a mergegate process (no record).
    The ``HEAD.lock`` git takes along with ``ref``'s (see :func:`_head_lock`)
    goes with it.
    """
    lock = lock_path(common_dir, ref)
    head_lock = _head_lock(common_dir, ref)
    locks = [lock] if head_lock is None else [lock, head_lock]
    folder = common_dir / "mergegate" / "movers"
    folder.mkdir(parents=True, exist_ok=True)
    # Breakers take turns: two of them must not both decide on the same lock,
    # or the second would remove the lock the first took after breaking it.
    with open(folder / ".break", "a") as turn:
        fcntl.flock(turn, fcntl.LOCK_EX)
        records = _records(folder)
        live = [r for _p, r in records if r.alive()]
        if live:
            holder = live[0].name
            raise MoveInFlight(str(git.repo), holder, f"{lock} is held by {_described(live[0])}")
        present = [path for path in locks if path.exists()]
        if not present:
            return None
        if not records:
            raise MoveInFlight(
                str(git.repo),
                None,
                f"{present[0]} is held by a process that is not a mergegate mover; "
                "remove it by hand once no git process runs in this repository",
            )
        for path in present:
            path.unlink(missing_ok=True)
        for path, _record in records:
            path.unlink(missing_ok=True)
    return present[0]


@contextlib.contextmanager
def holding(
    git: Git, common_dir: Path, ref: str, old: str, *, break_stale: bool
) -> Iterator[tuple[MainLock, Path | None]]:
    """Hold ``ref`` still at ``old`` (a ``verify`` transaction); abort it afterwards.

    Raises MoveInFlight if another process holds it, RepositoryError if it moved.
    """
    removed = None
    for _ in range(3):
        taken = take_main(git, common_dir, ref, old)
        if isinstance(taken, MainLock):
            break
        if isinstance(taken, Moved):
            raise RepositoryError(str(git.repo), f"{ref} moved while recovery read it; run again")
        if not break_stale:
            raise MoveInFlight(
                str(git.repo), _live_holder(common_dir), f"{lock_path(common_dir, ref)} is held"
            )
        removed = break_if_stale(git, common_dir, ref) or removed
    else:
        raise MoveInFlight(str(git.repo), None, f"{lock_path(common_dir, ref)} is held")
    with taken:
        # Under the lock, the record of a dead process is garbage: it holds
        # nothing, and no live holder can be mistaken for it.
        for path, record in _records(common_dir / "mergegate" / "movers"):
            if not record.alive():
                path.unlink(missing_ok=True)
        yield taken, removed


def _described(record: _Record) -> str:
    """The live mover, and what to do: wait, or, for a stopped one, continue or end it."""
    if record.host == _host():
        gone = not _alive(record.pid, record.started)
        if gone and record.git_pid is not None and _stopped(record.git_pid):
            # Its mergegate died: continued, the git finds its stdin closed and aborts.
            return (
                f"the git {record.git_pid} of the mover {record.name}, which is gone; the git is "
                f"stopped: `kill -CONT {record.git_pid}` lets it abort the move and let go of "
                "the lock, then try again"
            )
        for pid in (record.pid, record.git_pid):
            if pid is not None and _stopped(pid):
                return (
                    f"the live mover {record.name}, whose process {pid} is stopped: "
                    f"`kill -CONT {pid}` lets it finish the move; or end it, then try again"
                )
    return f"the live mover {record.name}; try again later"


def _live_holder(common_dir: Path) -> str | None:
    live = [r for _p, r in _records(common_dir / "mergegate" / "movers") if r.alive()]
    return live[0].name if live else None
