"""A downstream suite, written as a user would: public names only, the harness subclassed,
one rule and one invariant added, and four injected bugs each caught with a readable failure."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

from mergegate.apply import GitApplier
from mergegate.apply.testing import TestRepo
from mergegate.followups import Wiring, build_engine
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    Applier,
    ApplyResult,
    Blocked,
    CandidateKey,
    Engine,
    HeldMain,
    Outcome,
    State,
    on_enter,
)
from mergegate.statemachine.testing import (
    SMOKE,
    ApplierStateMachine,
    HarnessFailure,
    expect,
)

# A bug must be found in every run, not in most: the same examples each time. Shrinking
# is left out: the failure message carries the data, so the first failing run is enough.
FIND = settings(
    SMOKE,
    derandomize=True,
    max_examples=SMOKE.max_examples * 2,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


class QueueMachine(ApplierStateMachine):
    """The downstream machine: a real repository, a real SQLite file, the one wiring factory."""

    base: Path
    runs = itertools.count()

    def make_engine(self) -> Engine:
        self.dir = self.base / f"run-{next(self.runs)}"
        self.repo = TestRepo.create(self.dir / "repo")
        self.root = self.repo.commit("refs/heads/main", None, {"shared.txt": "base\n"})
        self.made = 0
        self.db = self.dir / "db.sqlite3"
        return build_engine(
            SQLiteStore(self.db), Wiring(self.dir / "todos"), hooks=self.extra_hooks()
        )

    def extra_hooks(self) -> list[object]:
        """The suite's own hooks; a bug injects one here."""
        return []

    def make_applier(self) -> Applier:
        return GitApplier(self.repo.path)

    def new_candidate(self, data: st.DataObject) -> CandidateKey:
        # Every candidate rewrites shared.txt from the root: the second one to land conflicts.
        self.made += 1
        name = f"c-{self.made}"
        sha = self.repo.commit(f"refs/heads/{name}", self.root, {"shared.txt": f"{name}\n"})
        return CandidateKey(name, name, sha)

    @rule()
    def someone_else_pushes(self) -> None:
        """The downstream rule: another integrator adds a file to main between applies."""
        self.repo.commit("refs/heads/main", self.repo.main(), {f"other-{self.made}.txt": "x\n"})
        self.observe_main()

    @invariant()
    def integrated_shas_are_in_main(self) -> None:
        """The downstream invariant: every integrated candidate's sha is an ancestor of main."""
        main = self.repo.main()
        for candidate in self.engine.store.candidates(State.INTEGRATED):
            base = self.repo.git("merge-base", candidate.key.sha, main)
            expect(
                base == candidate.key.sha,
                "integrated_shas_are_in_main",
                "an integrated candidate is not in main",
                candidate=candidate.key,
                main=main,
            )


@pytest.fixture
def machine(tmp_path: Path) -> Callable[[type[QueueMachine]], None]:
    """Run a QueueMachine subclass in ``tmp_path`` with the bug-finding settings."""

    def run(cls: type[QueueMachine]) -> None:
        cls.base = tmp_path
        run_state_machine_as_test(cls, settings=SMOKE if cls is QueueMachine else FIND)

    return run


def test_the_correct_suite_passes(machine: Callable[[type[QueueMachine]], None]) -> None:
    """Without a bug, the subclassed harness with its rule and invariant passes."""
    machine(QueueMachine)


def test_a_raising_hook_is_named_with_its_error(
    machine: Callable[[type[QueueMachine]], None],
) -> None:
    """A hook that raises on a block fails the run, naming the hook error it recorded."""

    def page_oncall(outcome: Outcome) -> None:
        raise RuntimeError(f"pager is down for {outcome.candidate.key.slug}")

    class RaisingHook(QueueMachine):
        def extra_hooks(self) -> list[object]:
            return [on_enter(State.BLOCKED, page_oncall)]

    with pytest.raises(HarnessFailure) as caught:
        machine(RaisingHook)
    message = str(caught.value)
    assert message.startswith("outcomes_match_store: a hook failed after the commit")
    assert "pager is down for c-" in message
    assert "candidate: CandidateKey(" in message


def test_a_hook_that_moves_a_candidate_is_caught(
    machine: Callable[[type[QueueMachine]], None],
) -> None:
    """A hook that remediates on block (a legal, unrequested move) shows returned vs stored."""

    class EagerRemediation(QueueMachine):
        def extra_hooks(self) -> list[object]:
            def remediate(outcome: Outcome) -> None:
                self.engine.start_remediation(outcome.candidate.key.slug)

            return [on_enter(State.BLOCKED, remediate)]

    with pytest.raises(HarnessFailure) as caught:
        machine(EagerRemediation)
    failure = caught.value
    assert failure.check == "outcomes_match_store"
    assert "the returned outcome is not the stored state" in str(failure)
    expected, actual = failure.facts["expected"], failure.facts["actual"]
    assert isinstance(expected, tuple)
    assert isinstance(actual, tuple)
    assert expected[0] is State.BLOCKED
    assert actual[0] is State.REMEDIATING
    assert "expected: (<State.BLOCKED" in str(failure)
    assert "blocked-start_remediation->remediating" in str(failure)


def test_a_store_write_that_bypasses_the_log_lists_the_violations(
    machine: Callable[[type[QueueMachine]], None],
) -> None:
    """A rule that writes a state straight into the database fails with verify()'s violations."""

    class Janitor(QueueMachine):
        @rule()
        def unstick_waiting(self) -> None:
            # The bug: "unstick" a waiting candidate without an event in its log.
            waiting = self.engine.store.candidates(State.PENDING)
            if waiting:
                with sqlite3.connect(self.db) as conn:
                    conn.execute(
                        "UPDATE candidates SET state = 'retry' WHERE id = ?", (waiting[0].id,)
                    )
                conn.close()

    with pytest.raises(HarnessFailure) as caught:
        machine(Janitor)
    failure = caught.value
    assert failure.check == "log_replays_cleanly"
    assert "the log does not replay to the stored state" in str(failure)
    violations = failure.facts["violations"]
    assert isinstance(violations, list)
    assert violations
    assert "violations: [Violation(candidate_id=" in str(failure)


def test_an_applier_that_moves_main_on_a_block_is_caught(
    machine: Callable[[type[QueueMachine]], None],
) -> None:
    """An applier that pushes to main while reporting a block fails with both mains named."""

    class Pushy(QueueMachine):
        def make_applier(self) -> Applier:
            inner, repo = GitApplier(self.repo.path), self.repo

            class PushOnBlock:
                def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
                    result = inner.apply(key, heartbeat)
                    if isinstance(result, Blocked):
                        repo.commit("refs/heads/main", repo.main(), {"oops.txt": key.slug})
                    return result

                def main_sha(self) -> str:
                    return inner.main_sha()

                def hold_main(
                    self, *, break_stale: bool = False
                ) -> AbstractContextManager[HeldMain]:
                    return inner.hold_main(break_stale=break_stale)

            return PushOnBlock()

    with pytest.raises(HarnessFailure) as caught:
        machine(Pushy)
    failure = caught.value
    # Either apply rule may meet it first: a plain apply, or one stalled past its lease.
    assert failure.check in ("apply_next", "stall_past_the_lease")
    assert f"{failure.check}: main moved on a" in str(failure)
    assert failure.facts["main_before"] != failure.facts["main_after"]
    assert failure.facts["state"] is State.BLOCKED
