"""Is a process on this host still the one that took a lock or a lease?

git's ``gc.pid`` rule: a holder named by host and pid is gone when the host is
this one and the pid runs no process. A pid can be reused, so the process's
start time (field 22 of ``/proc/<pid>/stat``, in clock ticks since boot) is
recorded beside it, and a pid that runs a process started at another time is
not the holder. The fence's mover records and the integration lease's owner
string both go through here.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import attrs

__all__ = [
    "Holder",
    "alive",
    "holder_gone",
    "lease_owner",
    "parse_owner",
    "start_time",
    "stopped",
]


def _stat(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 (the state) on; ``None`` if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold ")" or spaces.
    return stat.rsplit(")", 1)[1].split()


def start_time(pid: int) -> str | None:
    """The start time of ``pid`` (``/proc/<pid>/stat`` field 22); ``None`` if it runs nothing."""
    fields = _stat(pid)
    return None if fields is None or fields[0] == "Z" else fields[19]


def stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped (SIGSTOP, a debugger): alive, but it will not move on."""
    fields = _stat(pid)
    return fields is not None and fields[0] in ("T", "t")


def alive(pid: int, started: str | None) -> bool:
    """Whether ``pid`` runs, and, when ``started`` is known, is the process started then."""
    if Path("/proc/self").exists():
        now = start_time(pid)
        return now is not None and (started is None or now == started)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_host() -> str:
    """The host name that owner strings and mover records carry."""
    return socket.gethostname()


@attrs.frozen
class Holder:
    """The host, pid and (when recorded) start time an owner string names."""

    host: str
    pid: int
    started: str | None


# actor@host:pid, optionally :start. The actor may hold '@' and ':'; a host name cannot.
_OWNER = re.compile(r"@(?P<host>[^@:\s]+):(?P<pid>[0-9]+)(?::(?P<started>[0-9]+))?\Z")


def lease_owner(actor: str) -> str:
    """``actor@host:pid:start`` for this process: an owner another process can judge."""
    pid = os.getpid()
    started = start_time(pid)
    tail = "" if started is None else f":{started}"
    return f"{actor}@{this_host()}:{pid}{tail}"


def parse_owner(owner: str) -> Holder | None:
    """The holder ``owner`` names, or ``None`` if it names no host and pid (an orchestrator's)."""
    found = _OWNER.search(owner)
    if found is None:
        return None
    return Holder(found["host"], int(found["pid"]), found["started"])


def holder_gone(owner: str) -> bool:
    """Whether ``owner``'s process is certainly gone: on this host, and its pid is not it.

    An owner on another host, or one that names no pid, is never judged gone:
    only its lease's expiry can settle it. Without a recorded start time, a
    running pid counts as the holder (it may be a reuse, but that errs on the
    side of waiting).
    """
    holder = parse_owner(owner)
    if holder is None or holder.host != this_host():
        return False
    return not alive(holder.pid, holder.started)
