"""Kill a separate apply process at random points: main stays whole, cleanup leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from mergegate.apply import GitApplier
from mergegate.apply.testing import TestRepo as Repo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine, State
from mergegate.statemachine.testing.strategies import MARKER, PLAN_PATHS, RepoPlan, repo_plans

from ..examples import fraction
from ..procio import LiveOutput

MakeRepo = Callable[..., Repo]
# Each example starts and kills subprocesses: a quarter of the profile.
EXAMPLES = fraction(4, floor=5)

# The apply runs in its own interpreter, so SIGKILL hits a real process mid-step.
DRIVER = """
import json, sys
from mergegate.apply import CheckSpec, GitApplier
from mergegate.statemachine import CandidateKey
args = json.loads(sys.argv[1])
check = CheckSpec("slow-marker", tuple(args["check"]), timeout=30)
applier = GitApplier(args["repo"], checks=[check])
print("ready", flush=True)
for slug, branch, sha in args["keys"]:
    applier.apply(CandidateKey(slug, branch, sha), lambda: None)
print("done", flush=True)
"""


def slow_marker_check(directory: Path, sleep: float) -> list[str]:
    """A check that sleeps, then fails when the marker file exists in its cwd."""
    script = directory / "slow_marker.py"
    script.write_text(
        "import os, sys, time\n"
        f"time.sleep({sleep!r})\n"
        f"sys.exit(1 if os.path.exists({MARKER!r}) else 0)\n"
    )
    return [sys.executable, str(script)]


def main_history_is_whole(repo: Repo, start: str, tips: set[str]) -> None:
    """main is ``start``, or a chain of merges of known tips on top of it, none with the marker."""
    sha = repo.main()
    while sha != start:
        first, second = repo.parents(sha)
        assert second in tips, second
        assert MARKER not in repo.files(sha)
        sha = first


@pytest.mark.slow
@EXAMPLES
@given(
    plan=repo_plans(max_branches=3),
    delay=st.floats(0.0, 0.4),
    sleep=st.sampled_from([0.0, 0.05, 0.3]),
    bare=st.booleans(),
)
def test_killed_apply_leaves_main_whole(
    make_repo: MakeRepo,
    tmp_path_factory: pytest.TempPathFactory,
    plan: RepoPlan,
    delay: float,
    sleep: float,
    bare: bool,
) -> None:
    """SIGKILL at a random moment; then cleanup_stale leaves no worktree, and main is sound."""
    repo = make_repo(bare=bare)
    tips = repo.build(plan)
    if not bare:
        root = repo.git("rev-list", "--max-parents=0", "refs/heads/main")
        repo.git("update-ref", "refs/heads/work", root)
        repo.git("reset", "-q", "--hard")
        (repo.path / PLAN_PATHS[0]).write_text("dirty\n")
    before = repo.snapshot()
    start = repo.main()
    keys = [(b.slug, b.name, tips[b.name]) for b in plan.branches]
    check = slow_marker_check(tmp_path_factory.mktemp("check"), sleep)
    args = json.dumps({"repo": str(repo.path), "check": check, "keys": keys})
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with LiveOutput(proc) as live:
        assert live.wait_for(lambda line: True) == ["ready"], live.report()
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        live.finish()
    removed = GitApplier(repo.path).cleanup_stale()
    after = repo.snapshot()
    assert {k: v for k, v in after.refs.items() if k != "refs/heads/main"} == {
        k: v for k, v in before.refs.items() if k != "refs/heads/main"
    }
    assert after.worktrees == before.worktrees
    assert after.status == before.status
    assert repo.scratch_leftovers() == []
    assert all(p.name.startswith(f"{proc.pid}-") for p in removed)
    event("killed inside a check" if removed else "killed outside a check")
    event("main moved" if repo.main() != start else "main kept")
    main_history_is_whole(repo, start, {tips[b.name] for b in plan.branches})


ENGINE_DRIVER = """
import json, sys
from mergegate.apply import CheckSpec, GitApplier
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import Engine
args = json.loads(sys.argv[1])
engine = Engine(SQLiteStore(args["db"]))
check = CheckSpec("slow-marker", tuple(args["check"]), timeout=30)
applier = GitApplier(args["repo"], checks=[check])
print("ready", flush=True)
while engine.apply_next(applier, owner="victim") is not None:
    pass
print("done", flush=True)
"""


@pytest.mark.slow
@EXAMPLES
@given(
    plan=repo_plans(max_branches=3), delay=st.floats(0.0, 0.5), sleep=st.sampled_from([0.0, 0.2])
)
def test_killed_engine_apply_recovers_to_the_truth(
    make_repo: MakeRepo,
    tmp_path_factory: pytest.TempPathFactory,
    plan: RepoPlan,
    delay: float,
    sleep: float,
) -> None:
    """After a kill and recovery, a candidate is integrated exactly when main contains it."""
    repo = make_repo()
    tips = repo.build(plan)
    work = tmp_path_factory.mktemp("engine")
    db = work / "db.sqlite3"
    store = SQLiteStore(db)
    engine = Engine(store)
    for b in plan.branches:
        engine.submit(CandidateKey(b.slug, b.name, tips[b.name]))
    start = repo.main()
    check = slow_marker_check(work, sleep)
    args = json.dumps({"repo": str(repo.path), "db": str(db), "check": check})
    proc = subprocess.Popen(
        [sys.executable, "-c", ENGINE_DRIVER, args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    with LiveOutput(proc) as live:
        assert live.wait_for(lambda line: True) == ["ready"], live.report()
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        live.finish()

    later = Engine(store, clock=lambda: datetime.now(UTC) + timedelta(days=1))
    applier = GitApplier(repo.path)
    applier.cleanup_stale()
    with applier.hold_main(break_stale=True) as held:
        later.recover(held.main_sha, contains=applier.contains)
    assert later.verify() == []
    assert store.leases() == []
    for candidate in store.candidates():
        assert candidate.state is not State.APPLYING
        integrated = candidate.state is State.INTEGRATED
        assert integrated == applier.contains(candidate.key.sha), candidate
        event(f"after recovery: {candidate.state.value}")
    assert repo.scratch_leftovers() == []
    main_history_is_whole(repo, start, set(tips.values()))
    store.close()


RACER = """
import json, sys
from mergegate.apply import GitApplier
from mergegate.statemachine import Blocked, CandidateKey, Integrated
args = json.loads(sys.argv[1])
with GitApplier(args["repo"], max_main_retries=args["retries"]) as applier:
    result = applier.apply(CandidateKey(*args["key"]), lambda: None)
if isinstance(result, Integrated):
    print("integrated", result.main_sha, result.previous_main)
elif isinstance(result, Blocked):
    print("blocked", result.report.reason.value, len(result.report.evidence.main_attempts))
else:
    print("already", result.main_sha)
"""


@pytest.mark.slow
@pytest.mark.parametrize("retries", [0, 3])
def test_racing_appliers_never_lose_an_integration(make_repo: MakeRepo, retries: int) -> None:
    """Six processes integrate at once: each Integrated is in main, nothing else is."""
    repo = make_repo()
    base = repo.commit("refs/heads/main", None, {f"f{i}": "base\n" for i in range(6)})
    keys = [
        ("racer-" + str(i), f"r{i}", repo.commit(f"refs/heads/r{i}", base, {f"f{i}": "x\n"}))
        for i in range(6)
    ]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                RACER,
                json.dumps({"repo": str(repo.path), "key": key, "retries": retries}),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for key in keys
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    lines = [out.decode().split() for out, _ in results]
    integrated = {keys[i][2] for i, words in enumerate(lines) if words[0] == "integrated"}
    assert all(words[0] in ("integrated", "blocked") for words in lines), lines
    assert all(words[1] == "main_moved" for words in lines if words[0] == "blocked"), lines
    assert integrated
    merged: set[str] = set()
    sha = repo.main()
    while sha != base:
        first, second = repo.parents(sha)
        merged.add(second)
        sha = first
    assert merged == integrated
    assert repo.scratch_leftovers() == []
