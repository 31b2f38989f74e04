"""A fork server for the reliability suite: one Python, its child scripts imported, forks each run.

The kill loops start the driver hundreds of times and the races start four workers a
round; each start spent about 0.25 s of CPU importing mergegate before it did anything
worth killing or racing, on CI's two cores a large share of the slow suite. Here the
imports happen once. Each run is still a new process leading its own process group
(so ``killpg`` takes it and its git children), its own stdout and stderr pipes, its own
environment and a fresh random state (``random`` reseeds after a fork), killed and
reaped like a started one. A script's ``main(argv)`` is what its ``__main__`` runs.

The parent talks to the zygote over a ``SOCK_SEQPACKET`` socket pair, one JSON message
per packet:

- ``{"op": "spawn", "script": "driver.py", "argv": [...], "env": {...}, "cwd": ...}`` with two
  descriptors (the write ends of the child's stdout and stderr) answers ``{"pid": N}``;
- ``{"op": "poll", "pid": N}`` answers ``{"code": null}`` while N runs, then its exit
  code as ``subprocess`` gives it (``-9`` for SIGKILL), reaping it.

The zygote exits when the parent closes its end. Run as ``python zygote.py FD``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import sys
import tempfile
import traceback
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
SCRIPTS = ("driver.py", "workers.py")


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"mergegate_reliability_{name[:-3]}", HERE / name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(
    sock: socket.socket, request: dict[str, object], fds: list[int], script: ModuleType
) -> None:
    """Become the run: its own process group, pipes and environment. Never returns."""
    code = 1
    try:
        sock.close()
        os.setpgid(0, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for fd in fds:
            os.close(fd)
        env = request["env"]
        assert isinstance(env, dict)
        os.chdir(str(request["cwd"]))
        os.environ.clear()
        os.environ.update(env)
        # tempfile caches the first directory it picks; this run's TMPDIR decides.
        tempfile.tempdir = None
        argv = request["argv"]
        assert isinstance(argv, list)
        code = script.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # a run's crash is reported as a started one's would be
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(sock: socket.socket) -> None:
    scripts = {name: _load(name) for name in SCRIPTS}
    while True:
        data, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 2)
        if not data:
            return
        request = json.loads(data)
        if request["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(sock, request, fds, scripts[str(request["script"])])
            # The child makes its own group too; whichever runs first makes it, so
            # the group exists before the parent learns the pid and may killpg it.
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"pid": pid}).encode())
        elif request["op"] == "poll":
            done, status = os.waitpid(int(request["pid"]), os.WNOHANG)
            code = os.waitstatus_to_exitcode(status) if done else None
            sock.send(json.dumps({"code": code}).encode())
        else:
            raise SystemExit(f"zygote: unknown request {request!r}")


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
