"""The blocked flow end to end on a real SQLite store: hook, drain, fallback, crash repair."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from mergegate.followups import (
    CODE_BLOCKED,
    CODE_FOLLOWUP_FAILED,
    CODE_FOLLOWUP_PENDING,
    TODO_FILES,
    FollowUps,
    ResolvedRule,
    Wiring,
    build_engine,
    drain,
    mark_done,
    roadmap_slugs,
)
from mergegate.followups.scaffold import scaffold_todo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    Engine,
    FollowUpNotResolved,
    FollowUpState,
    Outcome,
    State,
)

from ..procio import all_ready, wait_until

SHA = "0123456789abcdef0123456789abcdef01234567"
NEW_SHA = "89abcdef0123456789abcdef0123456789abcdef"
KEY = CandidateKey("auth-login", "feature/auth-login", SHA)
FOLLOW_UP = "auth-login-integration-blocked-0123456"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh SQLite store file."""
    opened = SQLiteStore(tmp_path / "db.sqlite3")
    yield opened
    opened.close()


def wired(store: SQLiteStore, todos: Path, *, hook: bool = True) -> Engine:
    """An Engine with the follow-up hook (unless ``hook`` is false), guide and resolver."""
    return build_engine(store, Wiring(todos, follow_up_hook=hook))


def block(engine: Engine, report: BlockedReport, key: CandidateKey = KEY) -> Outcome:
    """Submit ``key``, start its apply and block it with ``report``."""
    engine.submit(key)
    engine.start_apply(key.slug, owner="integrator-1")
    return engine.block(key.slug, report)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, relative name to bytes."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def test_block_materializes_the_follow_up_and_replay_reuses_it(
    store: SQLiteStore, todos: Path, conflict_report: BlockedReport
) -> None:
    """A block creates the todo and roadmap entry; a replay returns the same follow-up and text."""
    engine = wired(store, todos)
    first = block(engine, conflict_report)
    assert first.blocked is not None
    assert first.blocked.follow_up_state is FollowUpState.CREATED
    assert first.blocked.follow_up_slug == FOLLOW_UP
    assert first.guidance is not None
    assert first.guidance.code == CODE_BLOCKED
    assert (todos / FOLLOW_UP / "input.md").read_text().count("- `src/a.py`\n- `src/b.py`\n") == 1
    assert roadmap_slugs(todos / "roadmap.yaml") == [FOLLOW_UP]
    assert store.follow_up_jobs() == []
    before = snapshot(todos)

    replay = engine.block(KEY.slug, conflict_report)
    assert replay.state is State.BLOCKED
    assert replay.guidance == first.guidance
    assert replay.blocked is not None
    assert replay.blocked.follow_up_slug == FOLLOW_UP
    assert replay.blocked.occurrences == 2
    assert snapshot(todos) == before


def test_remediate_and_resume_need_the_follow_up_done(
    store: SQLiteStore, todos: Path, checks_report: BlockedReport
) -> None:
    """Resume is refused while state.yaml is open, and moves to retry once it says done."""
    engine = wired(store, todos)
    block(engine, checks_report)
    remediating = engine.start_remediation(KEY.slug)
    assert remediating.guidance is not None
    assert remediating.guidance.next_commands == (
        "mergegate followups done auth-login-integration-blocked-0123456",
        "mergegate resume auth-login",
        "mergegate apply auth-login",
    )
    replay = engine.block(KEY.slug, checks_report)
    assert replay.state is State.REMEDIATING
    assert replay.guidance == remediating.guidance
    with pytest.raises(FollowUpNotResolved, match="status 'open'"):
        engine.resume(KEY.slug)
    assert engine.get(KEY.slug).state is State.REMEDIATING
    state = todos / FOLLOW_UP / "state.yaml"
    state.write_text(state.read_text().replace("status: open", "status: done"))
    # A hand-edited done names no occurrence: it answers the first block, not the replay.
    with pytest.raises(FollowUpNotResolved, match="answers occurrence 1"):
        engine.resume(KEY.slug)
    record = engine.show(KEY.slug).blocked
    assert record is not None
    mark_done(ResolvedRule.STATE_DONE, record, todos_root=todos, roadmap=todos / "roadmap.yaml")
    assert engine.resume(KEY.slug).state is State.RETRY


def test_block_after_resume_with_new_sha_gets_a_new_follow_up_after_the_old(
    store: SQLiteStore, todos: Path, checks_report: BlockedReport, conflict_report: BlockedReport
) -> None:
    """A new sha blocked again gets its own follow-up, listed after the previous one."""
    engine = wired(store, todos)
    block(engine, checks_report)
    engine.start_remediation(KEY.slug)
    engine.resume(KEY.slug, new_sha=NEW_SHA, force_reason="fix pushed as a new commit")
    engine.start_apply(KEY.slug, owner="integrator-1")
    second = engine.block(KEY.slug, conflict_report)
    assert second.blocked is not None
    new_follow_up = "auth-login-integration-blocked-89abcde"
    assert second.blocked.follow_up_slug == new_follow_up
    assert second.blocked.previous_follow_up == FOLLOW_UP
    assert roadmap_slugs(todos / "roadmap.yaml") == [FOLLOW_UP, new_follow_up]
    roadmap = (todos / "roadmap.yaml").read_text()
    assert (
        f"- slug: {new_follow_up}\n  group: integration-blocked\n  after:\n  - {FOLLOW_UP}\n"
        in (roadmap)
    )
    assert (
        f"- previous follow-up: `{FOLLOW_UP}`" in (todos / new_follow_up / "input.md").read_text()
    )


def test_unwritable_todos_folder_falls_back_to_manual_guidance(
    store: SQLiteStore, todos: Path, checks_report: BlockedReport
) -> None:
    """When mkdir fails (a file is in the way), the block still commits, FAILED is recorded."""
    todos.write_text("a file where the todos folder should be\n")
    engine = wired(store, todos)
    outcome = block(engine, checks_report)
    assert outcome.state is State.BLOCKED
    assert outcome.blocked is not None
    assert outcome.blocked.follow_up_state is FollowUpState.FAILED
    error = outcome.blocked.follow_up_error
    assert error is not None
    assert error.startswith("FileExistsError: ")
    assert "\n" not in error
    assert outcome.guidance is not None
    assert outcome.guidance.code == CODE_FOLLOWUP_FAILED
    assert outcome.guidance.next_commands[0] == "mergegate followups sync"
    assert "could not be created: FileExistsError" in outcome.guidance.facts[2]
    assert len(store.occurrences(outcome.blocked.id)) == 1
    assert [j.follow_up_slug for j in store.follow_up_jobs()] == [FOLLOW_UP]

    todos.unlink()
    result = drain(store, FollowUps(todos))
    assert result.created == (FOLLOW_UP,)
    assert result.failed == ()
    shown = engine.show(KEY.slug)
    assert shown.blocked is not None
    assert shown.blocked.follow_up_state is FollowUpState.CREATED
    assert shown.guidance is not None
    assert shown.guidance.code == CODE_BLOCKED


def test_todos_under_a_file_records_failed(
    store: SQLiteStore, tmp_path: Path, checks_report: BlockedReport
) -> None:
    """A todos path under a regular file fails with NotADirectoryError, recorded, not raised."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    outcome = block(wired(store, blocker / "todos"), checks_report)
    assert outcome.blocked is not None
    assert outcome.blocked.follow_up_state is FollowUpState.FAILED
    assert (outcome.blocked.follow_up_error or "").startswith("NotADirectoryError: ")


def test_malformed_roadmap_records_failed_and_is_left_untouched(
    store: SQLiteStore, todos: Path, checks_report: BlockedReport
) -> None:
    """A malformed roadmap fails the follow-up (recorded) without touching the roadmap."""
    todos.mkdir()
    roadmap = todos / "roadmap.yaml"
    roadmap.write_text("roadmap: [\n")
    outcome = block(wired(store, todos), checks_report)
    assert outcome.blocked is not None
    assert outcome.blocked.follow_up_state is FollowUpState.FAILED
    assert (outcome.blocked.follow_up_error or "").startswith("MalformedRoadmap: ")
    assert roadmap.read_text() == "roadmap: [\n"

    roadmap.write_text("# fixed by hand\n")
    assert drain(store, FollowUps(todos)).created == (FOLLOW_UP,)
    assert roadmap.read_text() == f"# fixed by hand\n- slug: {FOLLOW_UP}\n" + (
        "  group: integration-blocked\n  description: 'Unblock the integration of auth-login "
        "(feature/auth-login@0123456): checks_failed'\n"
    )


def test_crash_between_commit_and_materialization_is_repaired_by_drain(
    store: SQLiteStore, todos: Path, conflict_report: BlockedReport
) -> None:
    """A block committed without its hook leaves a pending job; drain materializes it once."""
    outcome = block(wired(store, todos, hook=False), conflict_report)
    assert outcome.blocked is not None
    assert outcome.blocked.follow_up_state is FollowUpState.PENDING
    assert outcome.guidance is not None
    assert outcome.guidance.code == CODE_FOLLOWUP_PENDING
    assert not todos.exists()

    assert drain(store, FollowUps(todos)).created == (FOLLOW_UP,)
    after_first = snapshot(todos)
    assert drain(store, FollowUps(todos)).created == ()
    assert snapshot(todos) == after_first
    assert roadmap_slugs(todos / "roadmap.yaml") == [FOLLOW_UP]
    record = store.blocked_record(KEY)
    assert record is not None
    assert record.follow_up_state is FollowUpState.CREATED


def test_crash_after_the_folder_before_the_roadmap_is_finished_by_drain(
    store: SQLiteStore, todos: Path, conflict_report: BlockedReport
) -> None:
    """A folder written before a crash is reused, and the missing roadmap entry is added."""
    outcome = block(wired(store, todos, hook=False), conflict_report)
    assert outcome.blocked is not None
    scaffold_todo(todos, outcome.blocked, conflict_report)
    folder = snapshot(todos / FOLLOW_UP)
    assert drain(store, FollowUps(todos)).created == (FOLLOW_UP,)
    assert snapshot(todos / FOLLOW_UP) == folder
    assert roadmap_slugs(todos / "roadmap.yaml") == [FOLLOW_UP]
    assert store.follow_up_jobs() == []


_DRAINER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mergegate.followups import FollowUps, drain
    from mergegate.persistence import SQLiteStore

    db, todos, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    store = SQLiteStore(db, busy_timeout=30)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    result = drain(store, FollowUps(todos))
    assert result.failed == (), result.failed
    store.close()
    """
)


def test_two_drain_processes_at_once_materialize_each_follow_up_once(
    store: SQLiteStore, tmp_path: Path, todos: Path, checks_report: BlockedReport
) -> None:
    """Two concurrent drains leave one folder and one roadmap entry per job, all done."""
    engine = wired(store, todos, hook=False)
    slugs = [f"item-{n}" for n in range(6)]
    for n, slug in enumerate(slugs):
        block(engine, checks_report, CandidateKey(slug, slug, f"{n:x}" * 40))
    assert len(store.follow_up_jobs()) == len(slugs)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _DRAINER, str(store.path), str(todos), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    # Released together once both say they are ready, however loaded the machine.
    lives = all_ready(procs, "ready")
    go.touch()
    codes = [live.finish(timeout=120)[0] for live in lives]
    assert codes == [0, 0], [live.report() for live in lives]
    expected = [f"{slug}-integration-blocked-{f'{n:x}' * 7}" for n, slug in enumerate(slugs)]
    assert roadmap_slugs(todos / "roadmap.yaml") == expected
    assert sorted(p.name for p in todos.iterdir() if p.is_dir()) == sorted(expected)
    assert store.follow_up_jobs() == []
    states = {r.follow_up_state for r in store.blocked_records()}
    assert states == {FollowUpState.CREATED}


def written(todos: Path) -> list[str]:
    """The roadmap's slugs so far (the file is replaced atomically, so it is always whole)."""
    path = todos / "roadmap.yaml"
    return roadmap_slugs(path) if path.exists() else []


_SLOW_DRAINER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mergegate.followups import FollowUps, drain
    from mergegate.persistence import SQLiteStore

    store = SQLiteStore(sys.argv[1], busy_timeout=30)
    drain(store, FollowUps(Path(sys.argv[2])))
    """
)


def test_drain_killed_midway_is_finished_by_the_next_drain(
    store: SQLiteStore, todos: Path, conflict_report: BlockedReport
) -> None:
    """SIGKILL a drain mid-run; the next drain leaves every follow-up complete, once, in order."""
    engine = wired(store, todos, hook=False)
    count = 24
    keys = [CandidateKey(f"item-{n}", f"item-{n}", f"{n:040x}") for n in range(count)]
    for key in keys:
        block(engine, conflict_report, key)
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_DRAINER, str(store.path), str(todos)])
    try:
        wait_until(
            lambda: len(written(todos)) >= 8,
            lambda: f"8 roadmap entries, saw {written(todos)} (drainer exit: {proc.poll()})",
            timeout=60,
        )
    finally:
        proc.kill()
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert 8 <= len(written(todos)) < count
    assert drain(store, FollowUps(todos)).failed == ()
    expected = [f"item-{n}-integration-blocked-{f'{n:040x}'[:7]}" for n in range(count)]
    assert roadmap_slugs(todos / "roadmap.yaml") == expected
    visible = sorted(p.name for p in todos.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert visible == sorted(expected)
    for slug in expected:
        assert sorted(p.name for p in (todos / slug).iterdir()) == sorted(TODO_FILES)
    assert store.follow_up_jobs() == []
