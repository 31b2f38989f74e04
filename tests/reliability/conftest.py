"""The reliability suite's parts: real stores, a real bare repository, a todos folder,
the child-process driver, recovery after a kill, the invariant checks, and the tally.

Every figure the suite reports is counted in ``TALLY`` and written, at the end of
the session, to ``tests/reliability/.last-run.json`` and the terminal summary.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, Protocol

import attrs
import pytest

from mergegate.apply import GitApplier, Identity
from mergegate.apply.git import Git
from mergegate.followups import (
    FollowUps,
    Wiring,
    build_engine,
    drain,
    roadmap_slugs,
)
from mergegate.followups.scaffold import read_source
from mergegate.persistence import open_store
from mergegate.statemachine import Engine, FollowUpState, State, Store

from ..procio import LiveOutput
from ..tally import TALLY

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.py"
ZYGOTE = HERE / "zygote.py"
LEASE_TTL = 0.4


def _load_driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mergegate_reliability_driver", DRIVER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


driver = _load_driver()

#: The driver's ``make_commit(git, ref, parent, edits)``: the driver is loaded
#: from its file (it also runs as a script), so its type is stated here.
MakeCommit = Callable[[Git, str, str, dict[str, str | None]], str]
make_commit: MakeCommit = driver.make_commit


# -- the tally ---------------------------------------------------------------


@pytest.fixture
def tally() -> Counter[str]:
    """The session's counters (kills, races, faults, hostile inputs, lost, duplicated)."""
    return TALLY


# -- PostgreSQL ----------------------------------------------------------------


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A store URL on the test server in a fresh schema, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"mg_rel_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield _with_schema(pg_server, name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


# -- the world: store, repository, todos -------------------------------------


def make_repo(path: Path) -> Path:
    """A bare repository whose main has one commit (README, shared.txt)."""
    path.mkdir(parents=True)
    git = Git(path, Identity("t", "t@x"))
    git.run("init", "-q", "--bare", "-b", "work")
    stream = (
        "commit refs/heads/main\nmark :1\ncommitter t <t@x> 1700000000 +0000\n"
        "data 5\nroot\nM 100644 inline README\ndata 7\nreadme\n"
        "M 100644 inline shared.txt\ndata 5\nbase\n\n"
    )
    git.run("fast-import", "--quiet", stdin=stream.encode())
    return path


@attrs.define
class World:
    """One store, one bare repository and one todos folder, shared by every process."""

    url: str
    repo: Path
    todos: Path
    tmp: Path

    def open(self) -> Store:
        return open_store(self.url)

    def engine(
        self, store: Store, *, actor: str | None = None, lease_ttl: timedelta | None = None
    ) -> Engine:
        """The Engine every process of the world uses; ``actor`` and ``lease_ttl`` if given."""
        engine = build_engine(store, Wiring(self.todos))
        # Only what the caller named: the Engine's own defaults stay its own.
        if actor is not None:
            engine.actor = actor
        if lease_ttl is not None:
            engine.lease_ttl = lease_ttl
        return engine

    def applier(self) -> GitApplier:
        return GitApplier(self.repo)

    def git(self, *args: str) -> str:
        return Git(self.repo, Identity("t", "t@x")).run(*args).text

    def main(self) -> str:
        return self.git("rev-parse", "refs/heads/main")

    def commit(self, branch: str, edits: dict[str, str | None], parent: str | None = None) -> str:
        """Commit ``edits`` on ``parent`` (default: main) as the tip of ``branch``."""
        git = Git(self.repo, Identity("t", "t@x"))
        return make_commit(git, f"refs/heads/{branch}", parent or self.main(), edits)

    def spawn(self, seed: int, pause: str, max_ops: int = 30) -> Forked:
        """Start a driver run in its own process group, forked by the zygote."""
        env = {**os.environ, "MG_LEASE_TTL": str(LEASE_TTL), "TMPDIR": str(self.tmp)}
        argv = [self.url, str(self.repo), str(self.todos), str(seed), pause, str(max_ops)]
        return zygote().spawn("driver.py", argv, env)


class Zygote:
    """The parent's end of ``zygote.py``: a Python with the driver imported, forking each run."""

    def __init__(self) -> None:
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, str(ZYGOTE), str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )

    def ask(self, request: dict[str, object], fds: list[int] | None = None) -> dict[str, Any]:
        data = json.dumps(request).encode()
        if fds:
            socket.send_fds(self._sock, [data], fds)
        else:
            self._sock.send(data)
        reply = self._sock.recv(1 << 16)
        assert reply, f"the zygote ended (exit {self.proc.poll()}) on {request['op']}"
        answer: dict[str, Any] = json.loads(reply)
        return answer

    def spawn(self, script: str, argv: list[str], env: dict[str, str]) -> Forked:
        """Fork a run of ``script``'s ``main(argv)`` with ``env``, its output on fresh pipes."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = {"op": "spawn", "script": script, "argv": argv, "env": env, "cwd": os.getcwd()}
        try:
            pid = self.ask(request, [out_w, err_w])["pid"]
        finally:
            os.close(out_w)
            os.close(err_w)
        return Forked(self, int(pid), argv, os.fdopen(out_r, "rb", 0), os.fdopen(err_r, "rb", 0))

    def close(self) -> None:
        self._sock.close()
        self.proc.wait(30)


_ZYGOTE: list[Zygote] = []


def zygote() -> Zygote:
    """This pytest process's zygote, started on first use."""
    if not _ZYGOTE:
        _ZYGOTE.append(Zygote())
    return _ZYGOTE[0]


@pytest.fixture(scope="session", autouse=True)
def _stop_zygote() -> Iterator[None]:
    yield
    while _ZYGOTE:
        _ZYGOTE.pop().close()


@attrs.define
class Forked:
    """A driver run forked by the zygote, with the part of ``Popen``'s interface the tests use."""

    zygote: Zygote
    pid: int
    args: list[str]
    stdout: BinaryIO
    stderr: BinaryIO
    stdin: None = None
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.ask({"op": "poll", "pid": self.pid})["code"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        # The zygote, not this process, is the parent: its exit is learned by asking.
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.002)
        return code

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


@pytest.fixture
def make_world(tmp_path: Path) -> Callable[[str], World]:
    """Builds a world on the store URL it is given."""

    def make(url: str) -> World:
        scratch = tmp_path / "tmp"
        scratch.mkdir(exist_ok=True)
        return World(url, make_repo(tmp_path / "repo.git"), tmp_path / "todos", scratch)

    return make


@pytest.fixture
def world(make_world: Callable[[str], World], store_url: str) -> World:
    """A world on each backend."""
    return make_world(store_url)


# -- killing the driver ----------------------------------------------------------


@attrs.define
class Run:
    """What one driver run printed before it was killed or finished."""

    steps: list[tuple[int, int, str]]
    paused: str | None
    killed: bool
    done: bool
    stderr: str


def _parse(data: bytes) -> tuple[list[tuple[int, int, str]], str | None, bool]:
    steps, paused, done = [], None, False
    # Only complete lines count: a line cut by the kill was never fully reported.
    for line in data.decode().split("\n")[:-1]:
        words = line.split()
        if words and words[0] == "STEP":
            steps.append((int(words[2]), int(words[3]), words[4]))
        elif words and words[0] == "PAUSE":
            paused = words[1]
        elif words == ["DONE"]:
            done = True
    return steps, paused, done


def kill_group(proc: subprocess.Popen[bytes] | Forked) -> None:
    """SIGKILL the driver's whole process group (the driver and its git children)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def drive(
    world: World, seed: int, pause: str, *, kill_after: float | None, timeout: float = 60
) -> Run:
    """Run the driver until it pauses (or ``kill_after`` seconds pass), then SIGKILL it.

    A ``check`` pause is seen through the check's marker file. Returns a Run.
    """
    marker = world.todos.parent / "check-running"
    marker.unlink(missing_ok=True)
    proc = world.spawn(seed, pause)
    with LiveOutput(proc, what=f"driver seed={seed} pause={pause} ({world.url})") as live:

        def paused_now() -> bool:
            paused = _parse(live.text().encode())[1]
            return bool(paused) or (pause == "check" and marker.exists())

        wait = kill_after if kill_after is not None else timeout
        live.arrives(lambda: paused_now() or live.closed(), wait)
        killed = False
        if paused_now():
            kill_group(proc)
            killed = True
        elif not live.closed():
            kill_group(proc)
            killed = kill_after is not None
            assert killed, f"driver hung: no pause {pause!r} within {wait:g} s.\n{live.report()}"
        code, out, err = live.finish(timeout=60)
    steps, paused, done = _parse(out.encode())
    if pause == "check" and marker.exists():
        paused = "check"
    killed = killed and code == -signal.SIGKILL
    if not killed:
        assert code == 0, live.report()
    return Run(steps, paused, killed, done, err)


def stranded(world: World) -> list[str]:
    """Slugs still ``applying`` whose sha ``main`` already contains."""
    store = world.open()
    try:
        applier = world.applier()
        return [c.key.slug for c in store.candidates(State.APPLYING) if applier.contains(c.key.sha)]
    finally:
        store.close()


def recover(world: World) -> Store:
    """What an operator runs after a crash: wait out the lease, recover, drain, clean up."""
    store = world.open()
    for lease in store.leases():
        wait = (lease.expires_at - datetime.now(UTC)).total_seconds()
        if wait > 0:
            time.sleep(wait + 0.01)
    applier = world.applier()
    engine = world.engine(store)
    # Every lease has expired: a main.lock whose mover died with it may go.
    with applier.hold_main(break_stale=True) as held:
        engine.recover(held.main_sha, contains=lambda sha: applier.contains(sha, held.main_sha))
    drain(store, FollowUps(world.todos))
    applier.cleanup_stale()
    return store


def processes_under(path: Path) -> list[int]:
    """The pids of live processes whose working directory is inside ``path``."""
    found = []
    root = str(path)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (cwd == root or cwd.startswith(root + "/")):
            found.append(int(entry.name))
    return found


def problems(world: World, store: Store, reported: set[tuple[int, int, str]]) -> list[str]:
    """Every invariant the kill tests check, as a list of what is wrong (empty when sound)."""
    found = [f"integrity: {p}" for p in store.integrity_problems()]
    engine = world.engine(store)
    found += [f"verify: {v}" for v in engine.verify()]
    logged = {(t.candidate_id, t.seq, t.event.value) for t in store.log()}
    found += [f"reported step missing from the log: {s}" for s in sorted(reported - logged)]
    # Follow-ups: one folder and one roadmap entry per blocked identity.
    records = store.blocked_records()
    roadmap = roadmap_slugs(world.todos / "roadmap.yaml") if records else []
    for name, count in Counter(roadmap).items():
        if count > 1:
            found.append(f"roadmap entry {name} appears {count} times")
    expected = {r.follow_up_slug for r in records}
    for record in records:
        folder = world.todos / record.follow_up_slug
        if record.follow_up_state is not FollowUpState.CREATED:
            found.append(f"follow-up {record.follow_up_slug} is {record.follow_up_state}")
        if read_source(folder) != record.key:
            found.append(f"folder {folder.name} does not link {record.key}")
        if roadmap.count(record.follow_up_slug) != 1:
            times = roadmap.count(record.follow_up_slug)
            found.append(f"roadmap holds {record.follow_up_slug} {times} times")
    if world.todos.is_dir():
        for entry in world.todos.iterdir():
            if entry.is_dir() and entry.name not in expected:
                found.append(f"stray folder in todos: {entry.name}")
            if entry.name.endswith(".tmp"):
                found.append(f"temporary file left in todos: {entry.name}")
    if len(set(roadmap) - expected):
        found.append(f"roadmap entries without a blocked outcome: {set(roadmap) - expected}")
    if store.follow_up_jobs():
        found.append(f"outbox rows still pending: {store.follow_up_jobs()}")
    # main: every first-parent step is mergegate's merge of exactly one integrated candidate.
    integrated = store.candidates(State.INTEGRATED)
    merged = []
    for line in world.git("rev-list", "--first-parent", "--parents", "refs/heads/main").split("\n"):
        shas = line.split()
        if len(shas) == 3:
            merged.append(shas[2])
        elif len(shas) != 1:
            found.append(f"main has a non-merge step {shas[0]}")
    for sha, count in Counter(merged).items():
        if count > 1:
            found.append(f"main merged {sha} {count} times")
    integrated_shas = {c.key.sha for c in integrated}
    if set(merged) != integrated_shas:
        found.append(
            f"main merged {sorted(set(merged) - integrated_shas)} not integrated; "
            f"integrated {sorted(integrated_shas - set(merged))} not in main"
        )
    # git leftovers: worktrees, scratch folders, processes in them, refs, lock files.
    trees = [ln for ln in world.git("worktree", "list", "--porcelain").split("\n") if ln]
    if [ln for ln in trees if ln.startswith("worktree ")] != [f"worktree {world.repo}"]:
        found.append(f"worktrees left: {trees}")
    scratch = world.repo / "mergegate" / "worktrees"
    if scratch.is_dir() and any(scratch.iterdir()):
        found.append(f"scratch folders left: {sorted(p.name for p in scratch.iterdir())}")
    stray = processes_under(world.repo / "mergegate" / "worktrees")
    if stray:
        found.append(f"processes still running in scratch worktrees: {stray}")
    for ref in world.git("for-each-ref", "--format=%(refname)").split("\n"):
        if ref and not ref.startswith("refs/heads/"):
            found.append(f"temporary ref left: {ref}")
    # A lock on a candidate branch (refs/heads/work/...) is the driver's own: it
    # writes those branches as a developer would, and a kill can land inside that
    # `git update-ref`. mergegate never writes them; every other lock is checked.
    work = world.repo / "refs" / "heads" / "work"
    locks = [
        str(p.relative_to(world.repo)) for p in world.repo.rglob("*.lock") if work not in p.parents
    ]
    if locks:
        found.append(f"git lock files left: {locks}")
    return found


@attrs.define
class KillReport:
    """The figures of one kill loop."""

    kills: int = 0
    completed: int = 0
    steps: int = 0
    points: Counter[str] = attrs.Factory(Counter)


POINTS = ("tx", "hook", "check", "heartbeat", "integrate", "random")


def kill_loop(world: World, kills: int, seed: int, tally: Counter[str], backend: str) -> KillReport:
    """Kill the driver ``kills`` times at points spread over ``POINTS``; check after each."""
    rng = random.Random(seed)
    report = KillReport()
    reported: set[tuple[int, int, str]] = set()
    runs = 0
    while report.kills < kills:
        runs += 1
        assert runs <= kills * 3, f"only {report.kills} kills landed in {runs} runs"
        point = POINTS[report.kills % len(POINTS)]
        if point == "tx":
            spec = f"tx:{rng.randint(1, 8)}"
        elif point == "hook":
            spec = f"hook:{rng.randint(1, 2)}"
        elif point == "heartbeat":
            spec = f"heartbeat:{rng.randint(1, 4)}"
        elif point == "integrate":
            spec = f"integrate:{rng.randint(1, 2)}"
        else:
            spec = "check" if point == "check" else "none"
        kill_after = rng.uniform(0.05, 1.5) if point == "random" else None
        run = drive(world, seed * 10_000 + runs, spec, kill_after=kill_after)
        reported.update(run.steps)
        report.steps += len(run.steps)
        if run.killed:
            report.kills += 1
            report.points[run.paused.split(":")[0] if run.paused else "random"] += 1
        else:
            report.completed += 1
        if run.killed and run.paused and run.paused.startswith("integrate"):
            # The kill must have landed where it says: main moved, the store not told.
            assert len(stranded(world)) == 1
            tally[f"stranded_integrations_recovered_{backend}"] += 1
        store = recover(world)
        try:
            found = problems(world, store, reported)
        finally:
            store.close()
        lost = [p for p in found if "missing" in p]
        dup = [p for p in found if "times" in p or "duplicate" in p]
        tally[f"lost_{backend}"] += len(lost)
        tally[f"duplicated_{backend}"] += len(dup)
        assert found == [], f"after run {runs} ({spec}, killed={run.killed}): {found}"
    tally[f"kills_survived_{backend}"] += report.kills
    tally[f"driver_runs_completed_{backend}"] += report.completed
    tally[f"steps_reported_and_found_{backend}"] += report.steps
    for name, count in report.points.items():
        tally[f"kill_point_{name}_{backend}"] += count
    return report


def race(tmp: Path, *commands: list[str], timeout: float = 120) -> list[list[str]]:
    """Start one worker per command, release them at once, return each one's output lines.

    Fails if a worker crashed (a traceback is never an expected outcome).
    """
    go = tmp / f"go-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    procs = [zygote().spawn("workers.py", _with_go(cmd, str(go)), env) for cmd in commands]
    outputs = []
    with contextlib.ExitStack() as stack:
        lives = [stack.enter_context(LiveOutput(proc)) for proc in procs]
        for live in lives:
            first = live.wait_for(lambda line: True, timeout=timeout)
            assert first == ["READY"], live.report()
        go.touch()
        for live in lives:
            code, _out, _err = live.finish(timeout=timeout)
            assert code == 0, live.report()
            outputs.append(live.lines()[1:])
    return outputs


def _with_go(cmd: list[str], go: str) -> list[str]:
    # The roadmap worker takes GO before its variable list of slugs; the others take it last.
    if cmd[0] == "roadmap":
        return [cmd[0], cmd[1], go, *cmd[2:]]
    return [*cmd, go]


class _Drive(Protocol):
    def __call__(
        self, world: World, seed: int, pause: str, *, kill_after: float | None, timeout: float = 60
    ) -> Run: ...


class _Race(Protocol):
    def __call__(
        self, tmp: Path, *commands: list[str], timeout: float = 120
    ) -> list[list[str]]: ...


@attrs.frozen
class Kit:
    """The suite's helpers, handed to test modules (which cannot import this conftest)."""

    drive: _Drive = drive
    recover: Callable[[World], Store] = recover
    problems: Callable[[World, Store, set[tuple[int, int, str]]], list[str]] = problems
    kill_loop: Callable[[World, int, int, Counter[str], str], KillReport] = kill_loop
    kill_group: Callable[[subprocess.Popen[bytes] | Forked], None] = kill_group
    processes_under: Callable[[Path], list[int]] = processes_under
    make_commit: MakeCommit = make_commit
    race: _Race = race
    zygote: Callable[[], Zygote] = zygote


@pytest.fixture
def kit() -> Kit:
    """The shared helpers: drive and kill the driver, recover, check the invariants."""
    return Kit()
