"""Fixtures for the command-line tests: a real bare repository with a work clone, and a
runner that calls ``python -m mergegate.cli`` as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from ..gitrepo import git, git_env, init_repo
from ..procio import LiveOutput

# The CLI tests' modules import these names from here.
_env = git_env
__all__ = ["MakeScratch", "Result", "Scratch", "_env", "git"]


@attrs.frozen
class Result:
    """What one ``mergegate`` subprocess did."""

    code: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> Any:
        """The JSON document on stdout."""
        return json.loads(self.stdout)


@attrs.define
class Scratch:
    """A bare integration repository, a work clone, and the ``mergegate`` runner on them."""

    root: Path
    shas: dict[str, str] = attrs.Factory(dict)

    @property
    def bare(self) -> Path:
        return self.root / "integration.git"

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def todos(self) -> Path:
        return self.bare / "todos"

    @property
    def db(self) -> Path:
        return self.bare / "mergegate" / "mergegate.sqlite3"

    @property
    def log(self) -> Path:
        return self.bare / "mergegate" / "mergegate.log"

    def main(self) -> str:
        return git(self.bare, "rev-parse", "refs/heads/main")

    def commit(self, branch: str, base: str, message: str, files: dict[str, str]) -> str:
        """Commit ``files`` on ``branch`` (made from ``base`` if new) in the clone, push it."""
        branches = git(self.work, "branch", "--list", branch)
        if branches:
            git(self.work, "checkout", "-q", branch)
        elif branch != base:
            git(self.work, "checkout", "-q", "-b", branch, base)
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        git(self.work, "add", "--", *files)
        git(self.work, "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "-f", "origin", branch)
        sha = git(self.work, "rev-parse", "HEAD")
        self.shas[branch] = sha
        return sha

    def __call__(self, *args: str, stdin: str | None = None, cwd: Path | None = None) -> Result:
        """Run ``mergegate --repo <bare> ARGS``; no traceback may ever reach stderr."""
        done = subprocess.run(
            [sys.executable, "-m", "mergegate.cli", "--repo", str(self.bare), *args],
            cwd=cwd or self.root,
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
            input=stdin if stdin is not None else "",
            timeout=120,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return Result(done.returncode, done.stdout, done.stderr)

    def snapshot(self) -> tuple[object, ...]:
        """Every row of every store table, and every file under todos/: what a command wrote."""
        rows: dict[str, list[tuple[Any, ...]]] = {}
        if self.db.exists():
            with sqlite3.connect(self.db) as conn:
                tables = [
                    r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                ]
                for table in sorted(tables):
                    rows[table] = sorted(conn.execute(f"SELECT * FROM {table}"), key=repr)
            conn.close()
        files = {}
        if self.todos.exists():
            for path in sorted(self.todos.rglob("*")):
                if path.is_file() and not path.name.endswith(".lock"):
                    files[str(path.relative_to(self.todos))] = path.read_bytes()
        return rows, files, self.main()


def _build(root: Path) -> Scratch:
    root.mkdir(parents=True)
    s = Scratch(root)
    init_repo(s.bare, bare=True)
    init_repo(s.work)
    git(s.work, "remote", "add", "origin", str(s.bare))
    s.commit(
        "main",
        "main",
        "Initial commit",
        {
            "README.md": "# greeter\n",
            "greeting.txt": "Hello, world.\n",
        },
    )
    s.commit(
        "add-docs",
        "main",
        "Add docs",
        {
            "docs/usage.md": "Run it.\n",
            "greeting.txt": "Hello, world!\n",
        },
    )
    s.commit("new-greeting", "main", "Greet mergegate", {"greeting.txt": "Hello, mergegate.\n"})
    s.commit("other", "main", "Another file", {"other.txt": "other\n"})
    return s


def _copy(template: Scratch, root: Path) -> Scratch:
    shutil.copytree(template.root, root, symlinks=True)
    copy = Scratch(root, dict(template.shas))
    git(copy.work, "remote", "set-url", "origin", str(copy.bare))
    return copy


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scratch]:
    # Built once per session and copied per test: a subprocess costs ~0.3 s.
    base = tmp_path_factory.mktemp("templates")
    fresh = _build(base / "fresh")
    ready = _copy(fresh, base / "ready")
    assert ready("init").code == 0
    blocked = _copy(ready, base / "blocked")
    assert blocked("submit", "add-docs", "--sha", blocked.shas["add-docs"]).code == 0
    assert blocked("submit", "new-greeting", "--sha", blocked.shas["new-greeting"]).code == 0
    assert blocked("apply").code == 0
    assert blocked("apply").code == 3
    return {"fresh": fresh, "ready": ready, "blocked": blocked}


MakeScratch = Callable[..., Scratch]


@pytest.fixture(scope="session")
def make_scratch(
    _templates: dict[str, Scratch], tmp_path_factory: pytest.TempPathFactory
) -> MakeScratch:
    """A factory of fresh copies: ``fresh`` (no store), ``ready`` (init done) or ``blocked``.

    Every copy has main, add-docs, new-greeting and other. In ``blocked``,
    add-docs is integrated and new-greeting is blocked by a conflict on greeting.txt.
    """

    def make(kind: str = "fresh") -> Scratch:
        return _copy(_templates[kind], tmp_path_factory.mktemp("scratch") / "s")

    return make


@pytest.fixture
def scratch(make_scratch: MakeScratch) -> Scratch:
    """Fresh repositories with the store initialized: main, add-docs, new-greeting, other."""
    return make_scratch("ready")


@pytest.fixture
def blocked(make_scratch: MakeScratch) -> Scratch:
    """add-docs integrated, then new-greeting applied and blocked by a conflict on greeting.txt."""
    return make_scratch("blocked")


def states(s: Scratch, *db: str) -> dict[str, str]:
    """Every candidate's state by slug, finished ones included (``list --all``)."""
    doc = s(*db, "--json", "list", "--all").doc
    return {c["slug"]: c["state"] for c in doc["result"]["candidates"]}


def watch(proc: subprocess.Popen[str]) -> LiveOutput:
    """The one :class:`LiveOutput` reading ``proc``'s pipes (made on first use).

    Once watched, take the rest with ``watch(proc).finish()``, never ``proc.communicate()``.
    """
    live = _watched.get(proc)
    if live is None:
        live = _watched[proc] = LiveOutput(proc)
    return live


_watched: weakref.WeakKeyDictionary[subprocess.Popen[str], LiveOutput] = weakref.WeakKeyDictionary()


def read_until(
    proc: subprocess.Popen[str], needle: str, count: int = 1, timeout: float = 30.0
) -> list[str]:
    """Read ``proc``'s stdout until ``count`` new lines contain ``needle``; return the lines read.

    Fails with every line seen on stdout and stderr (see tests/procio.py for why not select()).
    """
    return watch(proc).wait_for(needle, count=count, timeout=timeout)


def spawn(s: Scratch, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``mergegate --repo BARE ARGS`` started in the background, its pipes for watch()."""
    full = _env()
    full.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(s.bare), *args],
        cwd=s.root,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _spawned.append(proc)
    return proc


def stalled_queue(s: Scratch, tmp_path: Path, config: str) -> Path:
    """``config`` (a check that stalls while $SLOW names a file) written, add-docs and other
    submitted: the stall's flag file, made; a run given ``SLOW=<flag>`` stalls in its check."""
    (s.bare / "mergegate.toml").write_text(config, encoding="utf-8")
    for slug in ("add-docs", "other"):
        assert s("submit", slug).code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    return flag


_spawned: list[subprocess.Popen[str]] = []


def typed(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``line`` run by bash in ``cwd`` as typed: ``mergegate`` is the command on PATH."""
    env = _env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(autouse=True)
def _no_process_outlives_its_test() -> Iterator[None]:
    """Stop what a test spawned and left running (a failed wait): SIGTERM, then SIGKILL.

    A failing test used to leave its ``run`` up for the rest of the session, a
    process the later tests shared the machine with.
    """
    yield
    while _spawned:
        proc = _spawned.pop()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
