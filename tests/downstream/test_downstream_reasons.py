"""A downstream suite on public names only: the host's own scaffold (no input.md, no roadmap)
and a combined resolved rule bring a candidate blocked for every reason code to integrated,
by following ``Guidance.actions``; ``apply_interrupted`` as it arises, from three real lease
expiries settled by ``Engine.recover``."""

from __future__ import annotations

import ast
import importlib
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from mergegate.apply import CheckSpec, GitApplier, branch_tip
from mergegate.followups import build_engine, drain
from mergegate.statemachine import (
    Apply,
    Approve,
    BlockedReport,
    CandidateKey,
    CheckResult,
    Evidence,
    FollowUpState,
    MarkDone,
    Reason,
    Remediate,
    Resume,
    Show,
    State,
    Store,
    Sync,
)

from .host import git, host_wiring, mark_host_done

NO_BROKEN = CheckSpec("no-broken-file", ("test", "!", "-e", "broken.txt"))


class World:
    """A bare integration repository, an author's clone, a todos folder and the host's Engine."""

    def __init__(self, root: Path, store: Store) -> None:
        self.bare = root / "integration.git"
        self.clone = root / "clone"
        self.todos = root / "todos"
        self.todos.mkdir(parents=True)
        git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        git(root, "clone", "-q", str(self.bare), str(self.clone))
        (self.clone / "a.txt").write_text("a\n")
        git(self.clone, "add", "a.txt")
        git(self.clone, "commit", "-qm", "base")
        git(self.clone, "push", "-q", "origin", "HEAD:main")
        self.wiring = host_wiring(self.todos)
        self.engine = build_engine(store, self.wiring, actor="host")
        self.applier = GitApplier(self.bare, checks=[NO_BROKEN])

    def branch(self, name: str, path: str, text: str) -> CandidateKey:
        """A branch off main that writes ``text`` to ``path``, pushed; its identity."""
        git(self.clone, "fetch", "-q", "origin")
        git(self.clone, "checkout", "-qb", name, "origin/main")
        (self.clone / path).write_text(text)
        git(self.clone, "add", path)
        git(self.clone, "commit", "-qm", f"{name}: change {path}")
        git(self.clone, "push", "-q", "origin", name)
        return CandidateKey(name, name, branch_tip(self.bare, name))

    def commit_on_main(self, path: str, text: str) -> None:
        """Someone else's change lands on main."""
        git(self.clone, "fetch", "-q", "origin")
        git(self.clone, "checkout", "-q", "--detach", "origin/main")
        (self.clone / path).write_text(text)
        git(self.clone, "add", path)
        git(self.clone, "commit", "-qm", f"main: change {path}")
        git(self.clone, "push", "-q", "origin", "HEAD:main")

    def fix(self, reason: Reason, branch: str) -> None:
        """The remediation the host's agent makes on the branch, when the reason needs one."""
        if reason not in (Reason.MERGE_CONFLICT, Reason.CHECKS_FAILED):
            return
        git(self.clone, "fetch", "-q", "origin")
        git(self.clone, "checkout", "-q", branch)
        if reason is Reason.MERGE_CONFLICT:
            git(self.clone, "merge", "-q", "origin/main", ok=(0, 1))
            (self.clone / "a.txt").write_text("main and branch\n")
            git(self.clone, "commit", "-qam", "merge main")
        else:
            git(self.clone, "rm", "-q", "broken.txt")
            git(self.clone, "commit", "-qm", "remove the broken file")
        git(self.clone, "push", "-q", "origin", branch)

    def main(self) -> str:
        """The integration repository's main now."""
        return branch_tip(self.bare, "main")


def block(world: World, reason: Reason, slug: str) -> None:
    """Bring ``slug`` to blocked for ``reason``, the way that reason arises."""
    engine, main = world.engine, world.main()
    if reason in (Reason.MERGE_CONFLICT, Reason.CHECKS_FAILED):
        outcome = engine.apply(slug, world.applier, owner="host")
        assert outcome.blocked is not None
        assert outcome.blocked.reason is reason
        return
    if reason is Reason.APPLY_INTERRUPTED:
        interrupt_three_times(world, slug)
        return
    evidence = {
        Reason.MAIN_MOVED: Evidence(main_attempts=(main,)),
        Reason.PRECONDITION_FAILED: Evidence(diagnostic="the branch was rewritten"),
        Reason.PUSH_REJECTED: Evidence(diagnostic="remote: protected branch"),
        Reason.EXTERNAL: Evidence(),
        Reason.CONFIG_CHANGED: Evidence(files=("mergegate.toml",), diagnostic="+timeout = 1"),
        # A CI's build that never finished before its deadline (issue 26).
        Reason.CHECKS_TIMED_OUT: Evidence(
            checks=(CheckResult("ci/linux", None, "no worker took the build", timed_out=True),)
        ),
    }[reason]
    started = engine.start_apply(slug, owner="host")
    engine.block(slug, BlockedReport(reason, main, evidence), expected_seq=started.candidate.seq)


def interrupt_three_times(world: World, slug: str) -> None:
    """Three integrators die holding the lease; recover() settles each once it has expired."""
    engine, states = world.engine, []
    for n in range(3):
        engine.start_apply(slug, owner=f"dead-worker-{n}", ttl=timedelta(milliseconds=50))
        deadline = time.monotonic() + 30
        while any(lease.expires_at > datetime.now(UTC) for lease in engine.store.leases()):
            assert time.monotonic() < deadline, "the dead worker's lease never expired"
            time.sleep(0.01)
        with world.applier.hold_main() as held:
            within = partial(world.applier.contains, within=held.main_sha)
            [settled] = engine.recover(held.main_sha, contains=within)
        states.append(settled.state)
    # Requeued twice (not the candidate's fault), blocked apply_interrupted the third time,
    # its follow-up written by recover()'s own outcome, like any block's.
    assert states == [State.PENDING, State.PENDING, State.BLOCKED]
    assert settled.blocked is not None
    assert settled.blocked.follow_up_state is FollowUpState.CREATED
    assert (world.todos / settled.blocked.follow_up_slug / "TODO.md").is_file()


def follow(world: World, reason: Reason, slug: str, *, remove: bool) -> list[str]:
    """Follow the guidance's actions until the candidate is integrated; the names followed."""
    engine = world.engine
    followed: list[str] = []
    for _round in range(3):
        shown = engine.show(slug)
        if shown.state is State.INTEGRATED:
            return followed
        assert shown.guidance is not None, shown
        assert "input.md" not in shown.guidance.text
        for action in shown.guidance.actions:
            followed.append(action.name)
            match action:
                case Sync():
                    drain(engine.store, world.wiring.followups())
                case Remediate(slug=name):
                    engine.start_remediation(name)
                case MarkDone(slug=name, follow_up=follow_up):
                    world.fix(reason, engine.get(name).key.branch)
                    mark_host_done(world.todos, follow_up, remove=remove)
                case Approve(slug=name, sha=sha):
                    engine.approve(name, sha=sha, why="the host's operator read the diff")
                case Resume(slug=name, branch=branch):
                    engine.resume(name, new_sha=branch_tip(world.bare, branch))
                case Apply(slug=name):
                    engine.apply(name, world.applier, owner="host")
                case Show(slug=name):
                    engine.show(name)
    raise AssertionError(f"{slug} not integrated after three rounds: {engine.show(slug)}")


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
def test_every_reason_reaches_integrated(tmp_path: Path, store: Store, reason: Reason) -> None:
    """Blocked for ``reason``, the candidate follows its actions to integrated."""
    world = World(tmp_path, store)
    slug = reason.value.replace("_", "-")
    if reason is Reason.MERGE_CONFLICT:
        world.branch(slug, "a.txt", "branch\n")
        world.commit_on_main("a.txt", "main\n")
    elif reason is Reason.CHECKS_FAILED:
        world.branch(slug, "broken.txt", "x\n")
    else:
        world.branch(slug, f"{slug}.txt", "work\n")
    world.engine.submit(CandidateKey(slug, slug, branch_tip(world.bare, slug)))
    block(world, reason, slug)
    blocked = world.engine.show(slug)
    assert blocked.state is State.BLOCKED
    assert blocked.blocked is not None
    assert blocked.blocked.reason is reason
    folder = world.todos / blocked.blocked.follow_up_slug
    assert sorted(p.name for p in folder.iterdir()) == ["TODO.md", "state.yaml"]
    followed = follow(world, reason, slug, remove=list(Reason).index(reason) % 2 == 0)
    if reason is Reason.CONFIG_CHANGED:
        # An operator's approval settles it: no remediation, no todo to mark done.
        assert followed == ["approve", "resume", "apply"]
    else:
        assert followed == ["remediate", "done", "resume", "apply"]
    assert world.engine.get(slug).state is State.INTEGRATED
    assert world.engine.verify() == []
    # No roadmap, no lock; the host's deliver removed the delivered follow-up.
    assert list(world.todos.iterdir()) == []


def test_a_repeated_block_refreshes_the_hosts_evidence(tmp_path: Path, store: Store) -> None:
    """A second block of the same sha rewrites TODO.md with the new evidence."""
    world = World(tmp_path, store)
    key = world.branch("twice", "a.txt", "branch\n")
    world.commit_on_main("a.txt", "main\n")
    world.engine.submit(key)
    first = world.engine.apply("twice", world.applier, owner="host")
    assert first.blocked is not None
    todo = world.todos / first.blocked.follow_up_slug / "TODO.md"
    assert "merge_conflict" in todo.read_text()
    report = BlockedReport(Reason.EXTERNAL, world.main(), detail="the host's gate said no")
    again = world.engine.block("twice", report)
    assert again.blocked is not None
    assert again.blocked.occurrences == 2
    assert "external" in todo.read_text()


def test_the_suite_uses_public_names_only() -> None:
    """Every name this suite imports from mergegate is in its module's __all__."""
    here = Path(__file__).parent
    for path in sorted(here.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mergegate"):
                public = set(importlib.import_module(node.module or "").__all__)
                names = {alias.name for alias in node.names}
                assert names <= public, (path.name, names - public)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("mergegate.") for a in node.names), path.name
