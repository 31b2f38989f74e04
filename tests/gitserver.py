"""A real git server for the tests: ``git daemon --enable=receive-pack`` on 127.0.0.1.

A remote that is a local path runs receive-pack as the pusher's own child, so
a killed pusher takes it along; behind a daemon, the server's receive-pack
outlives its client, as it does on a forge. Every repository the server
exports gets a ``pre-receive`` hook the test steers through files in the
repository (no restart needed):

- ``test-sleep``: seconds the hook sleeps when a push updates
  ``refs/heads/main`` (the window in which a mover is killed with its push
  sitting on the server); it first appends the pid of the receive-pack that
  runs it to ``test-receiving``, so a test can wait for that push to end;
- ``test-reject``: when present, the hook prints its text (as ``remote:``
  lines reach the client) and refuses every push that updates ``main``.

The server is started once per test session (:func:`git_server` is
session-scoped) and each test makes repositories of its own under it.
Stalling it (``SIGSTOP``) stops the daemon and every receive-pack it runs.
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
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from .gitrepo import git, git_env, init_repo

__all__ = ["GitServer", "Team", "git_server", "make_team"]

_HOOK = """#!/bin/sh
# Test hook: sleep or refuse when a push updates refs/heads/main (see tests/gitserver.py).
main=no
while read old new ref; do
  [ "$ref" = refs/heads/main ] && main=yes
done
[ "$main" = yes ] || exit 0
if [ -f test-reject ]; then
  cat test-reject
  exit 1
fi
if [ -f test-sleep ]; then
  # The receive-pack holding this push (the hook's parent), for a test to wait on.
  echo "$PPID" >> test-receiving
  sleep "$(cat test-sleep)"
fi
exit 0
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class GitServer:
    """One ``git daemon`` serving every bare repository under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = base / "daemon.log"

    def start(self, port: int | None = None) -> None:
        """Start the daemon (on ``port``, else a free one) and wait until it accepts."""
        self.port = port or _free_port()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "git",
                    "daemon",
                    "--reuseaddr",
                    "--enable=receive-pack",
                    "--export-all",
                    "--informative-errors",
                    f"--base-path={self.base}",
                    "--listen=127.0.0.1",
                    f"--port={self.port}",
                    str(self.base),
                ],
                env=git_env(),
                stdout=log,
                stderr=log,
                # Its own process group: stop() and stall() reach its receive-packs too.
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError as err:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"git daemon did not accept on 127.0.0.1:{self.port} ({err}); "
                        f"its log: {self.log.read_text(errors='replace')[-2000:]}"
                    ) from err
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the daemon and every receive-pack it runs."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGCONT)
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The server is gone (connection refused) inside the block, back on the same port after."""
        port = self.port
        self.stop()
        try:
            yield
        finally:
            # The same port, so every clone's URL still names it.
            self.start(port)

    @contextlib.contextmanager
    def stalled(self) -> Iterator[None]:
        """The daemon (and its receive-packs) stopped with SIGSTOP inside the block: it hangs."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def repo(self, seed: Path | None = None, *, name: str | None = None) -> Path:
        """A new bare repository on the server (a bare clone of ``seed``), its hook installed."""
        name = name or f"r{uuid.uuid4().hex[:10]}.git"
        path = self.base / name
        if seed is None:
            git(self.base, "init", "-q", "--bare", "-b", "main", str(path))
        else:
            git(self.base, "clone", "-q", "--bare", "--end-of-options", str(seed), str(path))
        hook = path / "hooks" / "pre-receive"
        hook.write_text(_HOOK)
        hook.chmod(0o755)
        return path

    def url(self, repo: Path) -> str:
        """The ``git://`` URL of ``repo`` on this server."""
        return f"git://127.0.0.1:{self.port}/{repo.relative_to(self.base)}"


@attrs.define
class Team:
    """A server repository, a developer's clone and the integration clone mergegate runs in."""

    server: GitServer
    served: Path
    dev: Path
    integ: Path

    #: Extra environment for mergegate (``MERGEGATE_DB`` for a PostgreSQL store).
    env: dict[str, str] = attrs.Factory(dict)

    def mg_env(self) -> dict[str, str]:
        """The environment every ``mergegate`` of this team runs with."""
        return {**git_env(), **self.env}

    def mg(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``python -m mergegate.cli ARGS`` in the integration clone."""
        done = subprocess.run(
            [sys.executable, "-m", "mergegate.cli", *args],
            cwd=self.integ,
            env=self.mg_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def push(self, branch: str, files: dict[str, str], *, base: str = "origin/main") -> str:
        """Commit ``files`` on ``branch`` in the developer's clone and push it to the server."""
        git(self.dev, "fetch", "-q", "origin")
        exists = git(self.dev, "branch", "--list", branch)
        git(self.dev, "checkout", "-q", *(["-B", branch, base] if not exists else [branch]))
        for name, text in files.items():
            (self.dev / name).write_text(text)
        git(self.dev, "add", "--", *files)
        git(self.dev, "commit", "-q", "-m", f"{branch}: {', '.join(files)}")
        git(self.dev, "push", "-q", "origin", f"{branch}:refs/heads/{branch}")
        return git(self.dev, "rev-parse", "HEAD")

    def served_main(self) -> str:
        return git(self.served, "rev-parse", "refs/heads/main")

    def state(self, slug: str) -> str:
        shown = self.mg("--json", "show", slug)
        assert shown.returncode == 0, shown.stderr
        state: str = json.loads(shown.stdout)["result"]["candidate"]["state"]
        return state


def make_team(
    server: GitServer, root: Path, config: str, env: dict[str, str] | None = None
) -> Team:
    """A served repository with one commit on main, cloned twice; mergegate init in one."""
    seed = init_repo(root / "seed")
    (seed / "README.txt").write_text("team\n")
    git(seed, "add", "README.txt")
    git(seed, "commit", "-qm", "start")
    served = server.repo(seed)
    dev, integ = root / "dev", root / "integration"
    git(root, "clone", "-q", server.url(served), str(dev))
    git(root, "clone", "-q", server.url(served), str(integ))
    (integ / "mergegate.toml").write_text('remote = "origin"\n' + config)
    team = Team(server, served, dev, integ, dict(env or {}))
    assert team.mg("init").returncode == 0
    return team


@pytest.fixture(scope="session")
def git_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    """One git daemon for the whole session; each test makes its own repositories on it."""
    server = GitServer(tmp_path_factory.mktemp("gitserver"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
