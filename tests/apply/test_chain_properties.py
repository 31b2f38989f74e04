"""The chain's result is the serial one: same integrated candidates, same order, same tree."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

import attrs
import pytest
from hypothesis import event, given

from mergegate.apply import CheckSpec, GitApplier, GitCommandFailed, integrate_chain
from mergegate.apply.testing import TestRepo as Repo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine, Reason, State
from mergegate.statemachine.testing.strategies import MARKER, ChainPlan, chain_plans

from ..examples import fraction

MakeRepo = Callable[..., Repo]
# Each example builds two repositories and runs every check twice: a few in the
# default run, more (and longer queues) in the slow one.
EXAMPLES = fraction(10)
SLOW_EXAMPLES = fraction(2, floor=10)

# The check of every link: on its first run anywhere, another writer commits
# outside.txt onto main (when MOVER_FLAG is set); then the verdict is the marker.
# "First" is decided by creating the flag exclusively: two links' checks start
# at once in a chain, and both used to see no flag, move main, and share one
# index file, so one could commit the tree the other had read (a main that
# lost a candidate's change: the chain's tree then differed from the serial
# one, a flake CI's slow run caught).
CHECK = f"""\
import os, subprocess, sys, time
flag = os.environ.get("MOVER_FLAG")
first = False
if flag:
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        first = True
    except FileExistsError:
        pass
if first:
    repo = os.environ["MOVER_REPO"]
    def git(*args, stdin=None, env=None):
        return subprocess.run(("git", "-C", repo, *args), input=stdin, env=env,
                              capture_output=True, check=True, text=True).stdout.strip()
    while True:  # racing the other writers: retry until main moves
        old = git("rev-parse", "refs/heads/main")
        index = dict(os.environ, GIT_INDEX_FILE=flag + ".index")
        git("read-tree", old, env=index)
        blob = git("hash-object", "-w", "--stdin", stdin="outside\\n")
        git("update-index", "--add", "--cacheinfo", "100644," + blob + ",outside.txt", env=index)
        tree = git("write-tree", env=index)
        new = git("commit-tree", tree, "-p", old, stdin="outside writer")
        try:
            git("update-ref", "refs/heads/main", new, old)
            break
        except subprocess.CalledProcessError:
            time.sleep(0.01)
sys.exit(1 if os.path.exists({MARKER!r}) else 0)
"""


def _outside_writer(repo: Repo, after: float) -> threading.Thread:
    """A thread that, ``after`` seconds from now, commits outside-2.txt onto main.

    It retries while main moves under it or its lock is taken: it is an
    ordinary writer, racing the integrator, at a moment no one chose.
    """

    def write() -> None:
        time.sleep(after)
        blob = repo.git("hash-object", "-w", "--stdin", stdin=b"second outside writer\n")
        while True:
            old = repo.main()
            lines = [line for line in repo.git("ls-tree", old).split("\n") if line]
            lines.append(f"100644 blob {blob}\toutside-2.txt")
            tree = repo.git("mktree", stdin="".join(f"{line}\n" for line in lines).encode())
            new = repo.git("commit-tree", tree, "-p", old, stdin=b"second outside writer")
            try:
                repo.git("update-ref", "refs/heads/main", new, old)
            except GitCommandFailed:
                time.sleep(0.01)
                continue
            return

    thread = threading.Thread(target=write, name="outside-writer")
    thread.start()
    return thread


@attrs.frozen
class Result:
    """What a whole run produced, as the serial and the chained runs must agree on it."""

    integrated: tuple[str, ...]
    blocked: dict[str, Reason]
    tree: str


def _run(make_repo: MakeRepo, plan: ChainPlan, concurrency: int | None) -> Result:
    """Build the plan's repository and integrate its queue serially (``None``) or chained."""
    repo = make_repo()
    tips = repo.build(plan.repo)
    script = repo.path.parent / "check.py"
    script.write_text(CHECK)
    env = dict(os.environ)
    if plan.outside_writer:
        env.update(MOVER_FLAG=str(repo.path.parent / "moved"), MOVER_REPO=str(repo.path))
    applier = GitApplier(
        repo.path, checks=[CheckSpec("marker", (sys.executable, str(script)))], check_env=env
    )
    store = SQLiteStore(repo.path.parent / "db.sqlite3")
    try:
        engine = Engine(store)
        for branch in plan.repo.branches:
            engine.submit(CandidateKey(branch.slug, branch.name, tips[branch.name]))
        writer = None
        if plan.outside_after is not None:
            writer = _outside_writer(repo, plan.outside_after)
        if concurrency is None:
            order = []
            while (outcome := engine.apply_next(applier, owner="serial")) is not None:
                if outcome.candidate.state is State.INTEGRATED:
                    order.append(outcome.candidate.key.slug)
            integrated = tuple(order)
        else:
            integrated = integrate_chain(
                engine, applier, owner="chain", concurrency=concurrency
            ).integrated
        if writer is not None:
            writer.join()
        assert engine.verify() == []
        assert store.integrity_problems() == []
        assert store.leases() == []
        assert not store.candidates(State.APPLYING)
        assert not store.candidates(State.PENDING)
        assert repo.scratch_leftovers() == []
        blocked = {r.key.slug: r.reason for r in store.blocked_records()}
        return Result(integrated, blocked, repo.git("rev-parse", "refs/heads/main^{tree}"))
    finally:
        store.close()
        applier.close()


@EXAMPLES
@given(plan=chain_plans())
def test_a_chain_integrates_what_a_serial_run_integrates(
    make_repo: MakeRepo, plan: ChainPlan
) -> None:
    """Random queues, verdicts, concurrency 1-4 and an outside writer: the serial result."""
    _same_as_serial(make_repo, plan)


@pytest.mark.slow
@SLOW_EXAMPLES
@given(plan=chain_plans(max_branches=10))
def test_longer_chains_integrate_what_a_serial_run_integrates(
    make_repo: MakeRepo, plan: ChainPlan
) -> None:
    """Queues of up to ten candidates: the chain's result is still the serial one."""
    _same_as_serial(make_repo, plan)


def _same_as_serial(make_repo: MakeRepo, plan: ChainPlan) -> None:
    serial = _run(make_repo, plan, None)
    chained = _run(make_repo, plan, plan.concurrency)
    event(f"concurrency {plan.concurrency}")
    event(f"{len(serial.blocked)} blocked of {len(plan.repo.branches)}")
    if plan.outside_writer:
        event("main moved by another writer during the first check")
    if plan.outside_after is not None:
        event("main moved by a writer at a random moment")
    assert chained == serial
