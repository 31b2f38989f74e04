"""A real Buildbot master and its workers on 127.0.0.1, and a real git daemon, for tests.

Each server is a process this module starts (in its own process group) and
stops; ports are picked by binding to port 0 first, and readiness is waited for
by asking the server (a TCP connect, a REST call), never by sleeping. The
master's builders run the candidate's own ``check.sh`` after a Git step that
fetches the speculative ref mergegate pushed (``refs/mergegate/checks/<sha>``),
which is the set-up docs/buildbot.md asks of a real installation.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["BuildbotMaster", "GitDaemon", "Worker", "free_port", "wait_for"]

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port nobody listens on now (bound to 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, probe: Any, timeout: float = 60.0, every: float = 0.1) -> Any:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last seen: {last!r}")


def _connects(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class GitDaemon:
    """``git daemon`` serving every repository under ``base`` over git://, pushes allowed."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self) -> GitDaemon:
        self.proc = subprocess.Popen(
            [
                "git",
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                f"--base-path={self.base}",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                str(self.base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(f"git daemon on port {self.port}", lambda: _connects(self.port), 20)
        return self

    def stop(self) -> None:
        _stop(self.proc)


_MASTER_CFG = """\
from buildbot.plugins import schedulers, steps, util, worker

c = BuildmasterConfig = {{}}
c["title"] = "mergegate tests"
c["buildbotURL"] = "http://127.0.0.1:{www}/"
c["workers"] = [worker.Worker(name, "pw") for name in {workers!r}]
c["protocols"] = {{"pb": {{"port": "tcp:{pb}:interface=127.0.0.1"}}}}
# The master's own state in memory: in a file on this disk (slow fsyncs), four
# builds at once queued on its SQLite commits and each took twice as long as
# alone (6.8 s against 3.4 s for a 2 s build), which measured the master's
# disk, not mergegate; a real master keeps it in a server database.
c["db"] = {{"db_url": "sqlite://"}}
# The access log, for a failing test's report (BuildbotMaster.tail).
c["www"] = {{"port": "tcp:{www}:interface=127.0.0.1", "plugins": {{}}, "logfileName": "http.log"}}
c["buildbotNetUsageData"] = None


def factory():
    f = util.BuildFactory()
    # The speculative commit lives under refs/mergegate/ on the remote, which a
    # plain clone does not fetch: the Git step fetches the ref named as the branch.
    f.addStep(steps.Git(name="fetch", repourl=util.Property("repository"),
                        mode={mode!r}, method={method!r}, haltOnFailure=True))
    f.addStep(steps.ShellCommand(name="check", command=["sh", "check.sh"],
                                 env={{"FLAKY_DIR": {flaky!r}}}, haltOnFailure=True))
    return f


c["builders"] = [
    util.BuilderConfig(name=name, workernames=names, factory=factory(), collapseRequests=False)
    for name, names in {builders!r}
]
c["schedulers"] = [
    schedulers.ForceScheduler(
        name="mergegate",
        builderNames=[name for name, _ in {builders!r}],
        codebases=[util.CodebaseParameter(
            "",
            branch=util.StringParameter(name="branch"),
            revision=util.StringParameter(name="revision"),
            repository=util.StringParameter(name="repository"),
            project=util.StringParameter(name="project"),
        )],
    )
]
"""


class BuildbotMaster:
    """A master whose builders are ``builders`` (name -> worker names), REST on ``url``."""

    def __init__(
        self,
        base: Path,
        builders: dict[str, list[str]],
        workers: Iterable[str],
        *,
        incremental: bool = False,
    ) -> None:
        self.dir = base / "master"
        self.flaky = base / "flaky"
        self.www = free_port()
        self.pb = free_port()
        self.builders = builders
        self.worker_names = list(workers)
        # A fresh clone per build (the default) or a fetch into the last one (faster).
        self.mode = ("incremental", None) if incremental else ("full", "clobber")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.www}/"

    def start(self) -> BuildbotMaster:
        if not (BIN / "buildbot").exists() or not (BIN / "buildbot-worker").exists():
            raise AssertionError(
                f"buildbot is not installed in {BIN.parent}: pip install -e '.[dev]' "
                "(buildbot, buildbot-worker, buildbot-www)"
            )
        self.flaky.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [str(BIN / "buildbot"), "create-master", "--quiet", str(self.dir)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (self.dir / "master.cfg").write_text(
            _MASTER_CFG.format(
                www=self.www,
                pb=self.pb,
                workers=self.worker_names,
                builders=sorted(self.builders.items()),
                flaky=str(self.flaky),
                mode=self.mode[0],
                method=self.mode[1],
            )
        )
        with (self.dir / "stdout.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "buildbot"), "start", "--nodaemon", str(self.dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(f"the Buildbot master's REST API on {self.url}", self._answers, 90, 0.2)
        return self

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.dir / "twistd.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"the Buildbot master exited; twistd.log ends:\n{log}")
        try:
            return bool(self.get("builders")["builders"])
        except OSError:
            return False

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}api/v2/{path}", timeout=10) as resp:  # noqa: S310
            return json.load(resp)

    def tail(self, lines: int = 40) -> str:
        """The ends of the master's own log and its access log, for a failing test's report."""
        parts = []
        for name in ("twistd.log", "http.log"):
            try:
                text = (self.dir / name).read_text(errors="replace").splitlines()[-lines:]
            except OSError as err:
                text = [f"(unreadable: {err})"]
            parts.append(f"--- the master's {name}, last {lines} lines:\n" + "\n".join(text))
        return "\n".join(parts)

    def connected(self, name: str) -> bool:
        found = self.get(f"workers?name={name}")["workers"]
        return bool(found and found[0]["connected_to"])

    def stop(self) -> None:
        _stop(self.proc)


class Worker:
    """One ``buildbot-worker`` process connected to ``master`` as ``name``."""

    def __init__(self, master: BuildbotMaster, base: Path, name: str) -> None:
        self.master = master
        self.name = name
        self.dir = base / f"worker-{name}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        if not self.dir.exists():
            subprocess.run(
                [
                    str(BIN / "buildbot-worker"),
                    "create-worker",
                    "--quiet",
                    "--keepalive=10",
                    str(self.dir),
                    f"127.0.0.1:{self.master.pb}",
                    self.name,
                    "pw",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        (self.dir / "twistd.pid").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [str(BIN / "buildbot-worker"), "start", "--nodaemon", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(f"worker {self.name} to connect", lambda: self.master.connected(self.name), 60)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and every process of its group, as a crashed host would."""
        _stop(self.proc, signal.SIGKILL)
        wait_for(
            f"the master to see worker {self.name} gone",
            lambda: not self.master.connected(self.name),
            30,
        )

    def stop(self) -> None:
        _stop(self.proc)
