"""Injected faults: each ends in a clear error or a blocked outcome with evidence, loses
nothing already recorded, and the next run recovers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mergegate.apply import CheckSpec, GitApplier, GitNotFound
from mergegate.followups import CODE_BLOCKED, CODE_FOLLOWUP_FAILED, FollowUps, drain
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    Evidence,
    FollowUpState,
    Reason,
    RepositoryError,
    State,
    StoreError,
)

from ..procio import LiveOutput

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "workers.py"


def snapshot(store: Any) -> tuple[set[Any], set[Any]]:
    """Everything recorded so far: the log entries and every blocked outcome's evidence."""
    evidence = {o for r in store.blocked_records() for o in store.occurrences(r.id)}
    return set(store.log()), evidence


def submitted(world: Any, engine: Any, slug: str, edits: dict[str, str] | None = None) -> str:
    """Commit and submit ``slug``; return its sha."""
    sha = world.commit(f"work/{slug}", edits or {f"files/{slug}": "x\n"})
    engine.submit(CandidateKey(slug, f"work/{slug}", sha))
    return sha


def applying(world: Any, engine: Any, slug: str) -> None:
    """Submit ``slug`` and take the lease for it."""
    submitted(world, engine, slug)
    engine.start_apply(slug, owner="test")


def block_in_child(world: Any, slug: str, prefix: list[str], **env: str) -> list[str]:
    """Report ``slug`` blocked from a worker process started with ``prefix``; its output."""
    go = world.tmp / "go-now"
    go.touch()
    cmd = [*prefix, sys.executable, str(WORKERS), "block", world.url, str(world.todos), slug]
    done = subprocess.run(
        [*cmd, world.main(), str(go)],
        capture_output=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert b"Traceback" not in done.stderr
    return [line for line in done.stdout.decode().splitlines() if line != "READY"]


def assert_recovers(world: Any, kit: Any, store: Any, before: list[Any]) -> None:
    """Nothing recorded before is lost; a drain in a sound environment repairs the rest."""
    log, evidence = snapshot(store)
    assert before[0] <= log
    assert before[1] <= evidence
    drain(store, FollowUps(world.todos))
    assert kit.problems(world, store, set()) == []


def test_todos_folder_under_a_file(world: Any, kit: Any, tally: Counter[str]) -> None:
    """Todos under a regular file: blocked, evidence kept, FAILED, manual guidance; drain fixes."""
    store = world.open()
    engine = world.engine(store)
    applying(world, engine, "no-todos")
    world.todos.parent.mkdir(exist_ok=True)
    blocker = world.tmp / "a-file"
    blocker.write_text("in the way\n")
    broken = world.engine(store)
    broken.hooks[0].followups = FollowUps(blocker / "todos")
    before = snapshot(store)
    report = BlockedReport(Reason.EXTERNAL, world.main(), Evidence(diagnostic="fault test"))
    outcome = broken.block("no-todos", report)
    tally["faults_injected"] += 1
    assert outcome.state is State.BLOCKED
    assert outcome.blocked is not None
    assert outcome.blocked.follow_up_state is FollowUpState.FAILED
    assert "NotADirectoryError" in (outcome.blocked.follow_up_error or "")
    assert outcome.guidance is not None
    assert outcome.guidance.code == CODE_FOLLOWUP_FAILED
    assert any("followups sync" in c for c in outcome.guidance.next_commands)
    assert store.occurrences(outcome.blocked.id)[0].report == report
    assert_recovers(world, kit, store, before)
    assert engine.show("no-todos").guidance.code == CODE_BLOCKED
    store.close()


def test_todos_folder_missing_is_created(world: Any, kit: Any, tally: Counter[str]) -> None:
    """A todos folder that does not exist yet is created by the first follow-up."""
    store = world.open()
    engine = world.engine(store)
    applying(world, engine, "fresh-todos")
    assert not world.todos.exists()
    report = BlockedReport(Reason.EXTERNAL, world.main(), Evidence(diagnostic="fault test"))
    outcome = engine.block("fresh-todos", report)
    tally["faults_injected"] += 1
    assert outcome.blocked is not None
    assert outcome.blocked.follow_up_state is FollowUpState.CREATED
    assert kit.problems(world, store, set()) == []
    store.close()


def can_unshare() -> bool:
    """Whether this machine lets us make a private mount namespace for a child."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return done.returncode == 0


def test_todos_folder_read_only(world: Any, kit: Any, tally: Counter[str]) -> None:
    """A read-only todos mount (EROFS, in the child's mount namespace): FAILED with evidence."""
    if not can_unshare():
        pytest.skip("this machine forbids unshare -rm, so no read-only mount can be made")
    store = world.open()
    engine = world.engine(store)
    applying(world, engine, "ro-todos")
    world.todos.mkdir()
    before = snapshot(store)
    mount = f'mount -t tmpfs -o ro tmpfs {world.todos} && exec "$@"'
    lines = block_in_child(world, "ro-todos", ["unshare", "-rm", "sh", "-c", mount, "sh"])
    tally["faults_injected"] += 1
    assert lines[0].split()[:2] == ["OK", "block"]
    assert lines[0].split()[3] == "failed"
    record = store.blocked_record(engine.get("ro-todos").key)
    assert record is not None
    assert "Read-only file system" in (record.follow_up_error or "")
    assert engine.show("ro-todos").guidance.code == CODE_FOLLOWUP_FAILED
    assert_recovers(world, kit, store, before)
    store.close()


@pytest.mark.postgres
def test_disk_full_while_writing_the_follow_up(
    make_world: Any, pg_url: str, kit: Any, tally: Counter[str]
) -> None:
    """A 64-byte file-size limit (PostgreSQL store): the block commits, the todo FAILED (EFBIG)."""
    world = make_world(pg_url)
    store = world.open()
    engine = world.engine(store)
    applying(world, engine, "full-disk")
    before = snapshot(store)
    limit = (
        "import resource, signal, os, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64)); os.execv(sys.argv[1], sys.argv[1:])"
    )
    lines = block_in_child(world, "full-disk", [sys.executable, "-c", limit])
    tally["faults_injected"] += 1
    assert lines[0].split()[:2] == ["OK", "block"]
    assert lines[0].split()[3] == "failed"
    record = store.blocked_record(engine.get("full-disk").key)
    assert record is not None
    assert "File too large" in (record.follow_up_error or "")
    assert not [p for p in world.todos.iterdir() if p.name.endswith(".tmp")]
    assert_recovers(world, kit, store, before)
    store.close()


def test_disk_full_under_sqlite(
    make_world: Any, tmp_path: Path, kit: Any, tally: Counter[str]
) -> None:
    """A file-size limit under the SQLite files: a clear StoreError, nothing written, then works."""
    world = make_world(f"sqlite://{tmp_path / 'store.sqlite3'}")
    store = world.open()
    engine = world.engine(store)
    applying(world, engine, "full-db")
    for i in range(30):
        submitted(world, engine, f"filler-{i}")
    before = snapshot(store)
    limit = (
        "import resource, signal, os, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (512, 512)); os.execv(sys.argv[1], sys.argv[1:])"
    )
    lines = block_in_child(world, "full-db", [sys.executable, "-c", limit])
    tally["faults_injected"] += 1
    assert lines[0].startswith("ERR StoreError sqlite store:"), lines
    assert "nothing was written" in lines[0]
    assert snapshot(store) == before
    assert engine.get("full-db").state is State.APPLYING
    report = BlockedReport(Reason.EXTERNAL, world.main(), Evidence(diagnostic="after the fault"))
    assert engine.block("full-db", report).state is State.BLOCKED
    assert_recovers(world, kit, store, before)
    store.close()


def test_sqlite_locked_past_busy_timeout(
    make_world: Any, tmp_path: Path, kit: Any, tally: Counter[str]
) -> None:
    """Another process holds BEGIN IMMEDIATE past the busy timeout: a clear StoreError, no write."""
    path = tmp_path / "store.sqlite3"
    world = make_world(f"sqlite://{path}")
    store = SQLiteStore(path, busy_timeout=0.3)
    engine = world.engine(store)
    submitted(world, engine, "locked-out")
    before = snapshot(store)
    go = tmp_path / "go-lock"
    holder = subprocess.Popen(
        [sys.executable, str(WORKERS), "hold-lock", str(path), "60", str(go)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with LiveOutput(holder) as live:
        assert live.wait_for(lambda line: True) == ["READY"], live.report()
        go.touch()
        assert live.wait_for(lambda line: True) == ["LOCKED"], live.report()
        started = time.monotonic()
        with pytest.raises(
            StoreError, match=r"locked past the 0\.3 s busy timeout; nothing was written"
        ):
            engine.start_apply("locked-out", owner="test")
        tally["faults_injected"] += 1
        assert time.monotonic() - started < 2.5
        # The holder keeps the lock until now: the write above met it whatever the load.
        (go.parent / f"{go.name}.release").touch()
        code, _out, err = live.finish(timeout=30)
    assert code == 0, err
    assert snapshot(store) == before
    assert engine.start_apply("locked-out", owner="test").state is State.APPLYING
    store.close()


@pytest.mark.postgres
def test_postgres_lock_past_lock_timeout(make_world: Any, pg_url: str, tally: Counter[str]) -> None:
    """A row lock held by another session past lock_timeout: a clear StoreError, nothing written."""
    import psycopg

    from mergegate.persistence import PostgresStore

    world = make_world(pg_url)
    base, _, schema = pg_url.partition("?schema=")
    store = PostgresStore(base, schema=schema, lock_timeout=0.3)
    engine = world.engine(store)
    submitted(world, engine, "pg-locked")
    before = snapshot(store)
    with psycopg.connect(base) as other:
        other.execute(f'SET search_path TO "{schema}"')
        other.execute("SELECT id FROM candidates WHERE slug = 'pg-locked' FOR UPDATE")
        with pytest.raises(StoreError, match=r"waited more than 0\.3 s for a lock"):
            engine.start_apply("pg-locked", owner="test")
        tally["faults_injected"] += 1
        other.rollback()
    assert snapshot(store) == before
    assert engine.start_apply("pg-locked", owner="test").state is State.APPLYING
    store.close()


def test_git_missing_from_path(world: Any, kit: Any, tally: Counter[str]) -> None:
    """No git on PATH: the applier refuses to start, and the queue is untouched."""
    store = world.open()
    engine = world.engine(store)
    submitted(world, engine, "no-git")
    before = snapshot(store)
    old = os.environ["PATH"]
    os.environ["PATH"] = str(world.tmp / "empty-bin")
    try:
        with pytest.raises(GitNotFound, match="install git or fix PATH"):
            GitApplier(world.repo)
    finally:
        os.environ["PATH"] = old
    tally["faults_injected"] += 1
    assert snapshot(store) == before
    assert engine.get("no-git").state is State.PENDING
    assert engine.apply("no-git", GitApplier(world.repo), owner="test").state is State.INTEGRATED
    assert kit.problems(world, store, set()) == []
    store.close()


def test_git_vanishes_mid_apply(world: Any, kit: Any, tally: Counter[str]) -> None:
    """git vanishes after start_apply: a clear error; recover requeues it; it integrates later."""
    store = world.open()
    engine = world.engine(store, lease_ttl=timedelta(seconds=0.3))
    sha = submitted(world, engine, "git-gone")
    bin_dir = world.tmp / "bin"
    bin_dir.mkdir()
    git = bin_dir / "git"
    git.symlink_to(shutil.which("git") or "git")
    applier = GitApplier(world.repo, git_executable=str(git))
    git.unlink()
    with pytest.raises(RepositoryError, match="git"):
        engine.apply("git-gone", applier, owner="test")
    tally["faults_injected"] += 1
    assert engine.get("git-gone").state is State.APPLYING
    time.sleep(0.35)
    good = GitApplier(world.repo)
    [outcome] = engine.recover(good.main_sha(), contains=good.contains)
    assert outcome.state is State.PENDING
    assert outcome.transition is not None
    assert outcome.transition.reason is not None
    assert outcome.transition.reason.startswith("interrupted: ")
    assert engine.apply("git-gone", good, owner="test").state is State.INTEGRATED
    assert sha in world.git("rev-list", "refs/heads/main").split()
    assert kit.problems(world, store, set()) == []
    store.close()


def test_check_hangs_past_its_timeout(world: Any, kit: Any, tally: Counter[str]) -> None:
    """A hanging check is killed at its timeout: blocked checks_failed with evidence, main kept."""
    store = world.open()
    engine = world.engine(store)
    submitted(world, engine, "hangs")
    main = world.main()
    hang = CheckSpec("hang", (sys.executable, "-c", "import time; time.sleep(60)"), timeout=0.5)
    applier = GitApplier(world.repo, checks=(hang,), heartbeat_every=0.1)
    started = time.monotonic()
    outcome = engine.apply("hangs", applier, owner="test")
    tally["faults_injected"] += 1
    assert time.monotonic() - started < 10
    assert outcome.state is State.BLOCKED
    assert outcome.blocked is not None
    assert outcome.blocked.reason is Reason.CHECKS_FAILED
    [occurrence] = store.occurrences(outcome.blocked.id)
    [check] = occurrence.report.evidence.checks
    assert check.timed_out
    assert "killed after the 0.5s timeout" in check.output_tail
    assert world.main() == main
    assert kit.processes_under(world.repo / "mergegate" / "worktrees") == []
    engine.start_remediation("hangs")
    engine.resume("hangs", force_reason="the check is fixed")
    assert engine.apply("hangs", GitApplier(world.repo), owner="test").state is State.INTEGRATED
    assert kit.problems(world, store, set()) == []
    store.close()


@pytest.mark.postgres
def test_postgres_connection_dropped_mid_transaction(
    make_world: Any, pg_url: str, kit: Any, tally: Counter[str]
) -> None:
    """pg_terminate_backend inside a batch: nothing of it commits, the next call reconnects."""
    import psycopg

    world = make_world(pg_url)
    store = world.open()
    engine = world.engine(store)
    submitted(world, engine, "kept")
    before = snapshot(store)
    base = pg_url.partition("?")[0]
    sha = world.commit("work/dropped", {"files/dropped": "x\n"})

    def interrupted_batch() -> None:
        with engine.batch() as batch:
            batch.submit(CandidateKey("dropped", "work/dropped", sha))
            with psycopg.connect(base, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (store.backend_pid,))
            batch.start_apply("kept", owner="test")

    with pytest.raises(StoreError, match="lost mid-transaction; nothing was committed"):
        interrupted_batch()
    tally["faults_injected"] += 1
    assert snapshot(store) == before
    assert store.candidate("dropped") is None
    assert engine.start_apply("kept", owner="test").state is State.APPLYING
    # Dropped while idle: the first call says so, the next one reconnects.
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store.backend_pid,))
    tally["faults_injected"] += 1
    with pytest.raises(StoreError, match=r"was lost.*nothing was (written|committed)"):
        engine.submit(CandidateKey("dropped", "work/dropped", sha))
    engine.submit(CandidateKey("dropped", "work/dropped", sha))
    assert store.candidate("dropped") is not None
    assert kit.problems(world, store, set()) == []
    store.close()
