"""Property tests on generated repositories: main moves only on integrate, nothing else changes."""

from __future__ import annotations

from collections.abc import Callable

import attrs
from hypothesis import event, given
from hypothesis import strategies as st

from mergegate.apply import CheckSpec, GitApplier
from mergegate.apply.testing import Snapshot
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import (
    AlreadyIntegrated,
    ApplyResult,
    Blocked,
    CandidateKey,
    Integrated,
    LeaseHeld,
    MoveInFlight,
    Reason,
)
from mergegate.statemachine.testing.strategies import (
    MARKER,
    PLAN_PATHS,
    CommitPlan,
    RepoPlan,
    commit_plans,
    repo_plans,
)

from ..examples import fraction

MakeRepo = Callable[..., Repo]
# Each example builds real repositories and runs checks: a fifth of the profile.
EXAMPLES = fraction(5, floor=5)


@attrs.frozen
class Step:
    """One apply: which branch, at which heartbeat calls someone else moves main, and
    at which one the mover stalls past its lease while another process recovers."""

    branch: int
    moves_at: frozenset[int]
    move: CommitPlan
    external_before: CommitPlan | None
    stall_at: int | None = None


steps = st.lists(
    st.builds(
        Step,
        branch=st.integers(0, 3),
        moves_at=st.frozensets(st.integers(1, 7), max_size=3),
        move=commit_plans(marker_weight=0),
        external_before=st.none() | commit_plans(marker_weight=0),
        stall_at=st.none() | st.integers(1, 7),
    ),
    min_size=1,
    max_size=5,
)


def prepare(make_repo: MakeRepo, plan: RepoPlan, bare: bool) -> tuple[Repo, dict[str, str]]:
    """Build ``plan``; a non-bare repository gets a dirty checkout of another branch."""
    repo = make_repo(bare=bare)
    tips = repo.build(plan)
    if not bare:
        root = repo.git("rev-list", "--max-parents=0", "refs/heads/main")
        repo.git("update-ref", "refs/heads/work", root)
        repo.git("reset", "-q", "--hard")
        (repo.path / PLAN_PATHS[0]).write_text("dirty\n")
        (repo.path / "untracked.txt").write_text("u\n")
    return repo, tips


def without_main(snapshot: Snapshot) -> dict[str, str]:
    """Every ref but main."""
    return {k: v for k, v in snapshot.refs.items() if k != "refs/heads/main"}


def check_step(
    repo: Repo,
    key: CandidateKey,
    result: ApplyResult,
    before: Snapshot,
    moves: list[str],
    checked: bool,
) -> None:
    """The invariants of one apply, given the main moves made by someone else during it."""
    after = repo.snapshot()
    start = before.refs["refs/heads/main"]
    others_main = moves[-1] if moves else start
    assert without_main(after) == without_main(before)
    assert after.worktrees == before.worktrees
    assert after.status == before.status
    assert repo.scratch_leftovers() == []
    main = after.refs["refs/heads/main"]
    match result:
        case Integrated():
            assert main == result.main_sha
            assert result.previous_main == others_main
            assert repo.parents(main) == [others_main, key.sha]
            assert result.attempts[0] == start
            assert result.attempts[-1] == others_main
            if checked:
                assert MARKER not in repo.files(main)
        case AlreadyIntegrated():
            # Someone may move main after the read; the report names the main it read.
            assert main == others_main
            assert result.main_sha in (start, *moves)
            repo.git("merge-base", "--is-ancestor", key.sha, result.main_sha)
        case Blocked(report):
            assert main == others_main, report
            assert report.main_sha in (start, *moves)
            if report.reason is Reason.MAIN_MOVED:
                assert report.evidence.main_attempts[0] == start
                assert set(report.evidence.main_attempts) <= {start, *moves}
            if report.reason is Reason.CHECKS_FAILED:
                assert checked
            assert report.reason in (Reason.MERGE_CONFLICT, Reason.CHECKS_FAILED, Reason.MAIN_MOVED)


@EXAMPLES
@given(
    plan=repo_plans(),
    plan_steps=steps,
    bare=st.booleans(),
    checked=st.booleans(),
    retries=st.integers(0, 2),
)
def test_main_moves_only_on_integrate(
    make_repo: MakeRepo,
    marker_check: CheckSpec,
    plan: RepoPlan,
    plan_steps: list[Step],
    bare: bool,
    checked: bool,
    retries: int,
) -> None:
    """Across generated repositories, races and checks, only an integration moves main."""
    repo, tips = prepare(make_repo, plan, bare)
    applier = GitApplier(
        repo.path, checks=[marker_check] if checked else [], max_main_retries=retries
    )
    for step in plan_steps:
        if step.external_before is not None:
            edits = {e.path: e.content for e in step.external_before.edits}
            repo.commit("refs/heads/main", repo.main(), edits)
        branch = plan.branches[step.branch % len(plan.branches)]
        key = CandidateKey(branch.slug, branch.name, tips[branch.name])
        moves: list[str] = []
        calls = 0
        lost = False

        def beat(step: Step = step, moves: list[str] = moves) -> None:
            nonlocal calls, lost
            calls += 1
            if calls == step.stall_at:
                # Another process recovers while the mover is paused here: if it
                # gets hold of main, it takes the lease, and this heartbeat fails.
                try:
                    with applier.hold_main():
                        lost = True
                except MoveInFlight:
                    event("stall: recovery refused, the move was in flight")
            if lost:
                raise LeaseHeld("main", "recoverer", None, lost=True)
            if calls in step.moves_at and applier.main_lock.exists():
                # Under the fence git's lock keeps every other writer off main.
                event("race: another writer found main locked")
            elif calls in step.moves_at:
                edits = {e.path: e.content for e in step.move.edits}
                moves.append(repo.commit("refs/heads/main", repo.main(), edits, f"race {calls}"))

        before = repo.snapshot()
        try:
            result = applier.apply(key, beat)
        except LeaseHeld:
            event("stall: recovery took the lease, the mover stopped")
            after = repo.snapshot()
            assert after.refs["refs/heads/main"] == (
                moves[-1] if moves else before.refs["refs/heads/main"]
            )
            assert without_main(after) == without_main(before)
            assert not applier.main_lock.exists()
            assert repo.scratch_leftovers() == []
            continue
        check_step(repo, key, result, before, moves, checked)
        label = result.report.reason.value if isinstance(result, Blocked) else type(result).__name__
        event(f"outcome: {label}")


def test_plans_reach_every_outcome(make_repo: MakeRepo, marker_check: CheckSpec) -> None:
    """The plan vocabulary can produce a clean merge, a conflict and a failing check."""
    repo = make_repo()
    base = repo.commit("refs/heads/main", None, dict.fromkeys(PLAN_PATHS, "base\n"))
    repo.commit("refs/heads/main", base, {"a.txt": "main\n"})
    clean = repo.commit("refs/heads/clean", base, {"b.txt": "x\n"})
    conflict = repo.commit("refs/heads/conflict", base, {"a.txt": "other\n"})
    failing = repo.commit("refs/heads/failing", base, {MARKER: "x\n"})
    applier = GitApplier(repo.path, checks=[marker_check])
    results = [
        applier.apply(CandidateKey(n, n, s), lambda: None)
        for n, s in (("clean", clean), ("conflict", conflict), ("failing", failing))
    ]
    assert isinstance(results[0], Integrated)
    assert [r.report.reason for r in results[1:] if isinstance(r, Blocked)] == [
        Reason.MERGE_CONFLICT,
        Reason.CHECKS_FAILED,
    ]
