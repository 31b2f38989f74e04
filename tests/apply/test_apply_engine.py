"""The Engine drives GitApplier on a real repository, recording into a real SQLite store."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import strategies as st

from mergegate.apply import CheckSpec, GitApplier
from mergegate.apply.testing import TestRepo as Repo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    Applier,
    ApplyResult,
    CandidateKey,
    Engine,
    Event,
    Integrated,
    LeaseHeld,
    Reason,
    State,
)
from mergegate.statemachine.testing.harness import ApplierStateMachine
from mergegate.statemachine.testing.strategies import MARKER, PLAN_PATHS, commit_plans

from ..examples import fraction

MakeRepo = Callable[..., Repo]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An Engine on a fresh SQLite file."""
    store = SQLiteStore(tmp_path / "db.sqlite3")
    yield Engine(store)
    store.close()


def submit_branch(engine: Engine, repo: Repo, name: str, edits: dict[str, str | None]) -> str:
    """Make branch ``name`` off main with ``edits`` and submit it; return its sha."""
    sha = repo.commit(f"refs/heads/{name}", repo.main(), edits)
    engine.submit(CandidateKey(name, name, sha))
    return sha


def events(engine: Engine, slug: str) -> list[Event]:
    """The events of ``slug``'s log, oldest first."""
    return [t.event for t in engine.store.history(engine.get(slug).id)]


def test_apply_next_integrates_blocks_and_orders_fifo(
    engine: Engine, repo: Repo, marker_check: CheckSpec
) -> None:
    """apply_next takes candidates FIFO: integrate, conflict, failing check, each recorded."""
    base = repo.main()
    clean = submit_branch(engine, repo, "clean", {"a": "clean\n"})
    submit_branch(engine, repo, "conflict", {"a": "other\n"})
    submit_branch(engine, repo, "failing", {MARKER: "x\n"})
    applier = GitApplier(repo.path, checks=[marker_check])

    first = engine.apply_next(applier, owner="test")
    assert first is not None
    assert first.candidate.key.slug == "clean"
    assert first.state is State.INTEGRATED
    merged = repo.main()
    assert repo.parents(merged) == [base, clean]
    assert first.transition is not None
    assert first.transition.reason == f"main={merged}"
    assert events(engine, "clean") == [Event.SUBMIT, Event.START_APPLY, Event.INTEGRATE]

    second = engine.apply_next(applier, owner="test")
    assert second is not None
    assert second.state is State.BLOCKED
    assert second.blocked is not None
    assert second.blocked.reason is Reason.MERGE_CONFLICT
    assert second.blocked.main_sha == merged
    (occurrence,) = engine.store.occurrences(second.blocked.id)
    assert occurrence.report.evidence.conflicted_paths == ("a",)

    third = engine.apply_next(applier, owner="test")
    assert third is not None
    assert third.blocked is not None
    assert third.blocked.reason is Reason.CHECKS_FAILED
    (occurrence,) = engine.store.occurrences(third.blocked.id)
    assert [c.name for c in occurrence.report.evidence.checks if c.failed] == ["marker"]

    assert engine.apply_next(applier, owner="test") is None
    assert repo.main() == merged
    assert engine.verify() == []
    assert engine.store.leases() == []


def test_resumed_candidate_with_a_fix_integrates(engine: Engine, repo: Repo) -> None:
    """A conflict, remediated by a new sha on top of main, integrates on retry."""
    repo.commit("refs/heads/main", repo.main(), {"a": "main\n"})
    old = repo.main()
    sha = repo.commit("refs/heads/feat", repo.git("rev-parse", "refs/heads/main~1"), {"a": "x\n"})
    engine.submit(CandidateKey("feat", "feat", sha))
    applier = GitApplier(repo.path)
    blocked = engine.apply("feat", applier, owner="test")
    assert blocked.state is State.BLOCKED
    fix = repo.commit("refs/heads/feat", old, {"a": "resolved\n"})
    engine.start_remediation("feat")
    engine.resume("feat", new_sha=fix, force_reason="rebased onto main")
    done = engine.apply("feat", applier, owner="test")
    assert done.state is State.INTEGRATED
    assert repo.parents(repo.main()) == [old, fix]
    assert engine.get("feat").key.sha == fix


def test_lost_lease_leaves_main_and_candidate_applying(
    engine: Engine, repo: Repo, marker_check: CheckSpec, tmp_path: Path
) -> None:
    """If another owner takes the lease mid-apply, main stays and the candidate stays applying."""
    submit_branch(engine, repo, "feat", {"x": "x\n"})
    inner = GitApplier(repo.path, checks=[marker_check])
    before = repo.snapshot()

    class Thief:
        """Delegates to GitApplier; before the first heartbeat, another owner takes the lease."""

        def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
            def beat() -> None:
                thief = SQLiteStore(tmp_path / "db.sqlite3")
                with thief.transaction() as tx:
                    held = tx.lease("main")
                    assert held is not None
                    assert held.candidate_id is not None
                    tx.drop_lease("main", held.candidate_id)
                    tx.put_lease(attrs.evolve(held, owner="thief"))
                thief.close()
                heartbeat()

            return inner.apply(key, beat)

        def main_sha(self) -> str:
            return inner.main_sha()

    with pytest.raises(LeaseHeld, match="thief"):
        engine.apply("feat", Thief(), owner="test")
    assert repo.snapshot() == before
    assert repo.scratch_leftovers() == []
    assert engine.get("feat").state is State.APPLYING


class GitMachine(ApplierStateMachine):
    """The shipped harness, plugged into GitApplier and SQLiteStore."""

    counter = itertools.count()
    base: Path

    def make_engine(self) -> Engine:
        self.dir = GitMachine.base / f"run-{next(self.counter)}"
        self.dir.mkdir(parents=True)
        self.repo = Repo.create(self.dir / "repo")
        self.repo.commit("refs/heads/main", None, dict.fromkeys(PLAN_PATHS, "base\n"))
        self.made = 0
        return Engine(SQLiteStore(self.dir / "db.sqlite3"))

    def make_applier(self) -> Applier:
        script = self.dir / "check.py"
        script.write_text(f"import os, sys\nsys.exit(1 if os.path.exists({MARKER!r}) else 0)\n")
        check = CheckSpec("marker", (sys.executable, str(script)), timeout=30)
        return GitApplier(self.repo.path, checks=[check])

    def new_candidate(self, data: st.DataObject) -> CandidateKey:
        self.made += 1
        name = f"c-{self.made}"
        plan = data.draw(commit_plans(), label="candidate edits")
        parent = self.repo.main()
        sha = self.repo.commit(
            f"refs/heads/{name}", parent, {e.path: e.content for e in plan.edits}
        )
        return CandidateKey(name, name, sha)

    def remediate(self, key: CandidateKey, data: st.DataObject) -> str | None:
        if not data.draw(st.booleans(), label="push a fix"):
            return None
        return self.repo.commit(f"refs/heads/{key.branch}", self.repo.main(), {"fix": key.slug})

    def check_integrated(self, key: CandidateKey, result: Integrated) -> None:
        assert self.repo.parents(result.main_sha) == [result.previous_main, key.sha]
        assert MARKER not in self.repo.files(result.main_sha)
        assert self.repo.scratch_leftovers() == []


@pytest.fixture(autouse=True)
def _machine_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    GitMachine.base = tmp_path_factory.mktemp("machine")


TestGitHarness = GitMachine.TestCase
# Every step applies in a real repository: an eighth of the profile.
TestGitHarness.settings = fraction(8, stateful_step_count=12)
