"""The chain's result is the serial one: same integrated candidates, same order, same tree."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

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

# The check of every link. On its first run anywhere (when MOVER_FLAG is set)
# it creates the flag, exclusively (two links' checks start at once in a
# chain), and waits until the test's writer thread has moved main; then the
# verdict is the marker. The move is the thread's, not the check's: a chain
# kills the checks of links it throws away, and a check killed halfway through
# its own move (a chain rebuilt when the second writer moved main) left main
# without outside.txt, so the chain's tree differed from the serial one, where
# no check is ever killed (the flake CI's slow run caught twice at 1776f09).
CHECK = f"""\
import os, sys, time
flag = os.environ.get("MOVER_FLAG")
if flag:
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        pass
    else:
        deadline = time.monotonic() + 60
        while not os.path.exists(flag + ".done"):
            if time.monotonic() > deadline:
                sys.exit("the outside writer never moved main")
            time.sleep(0.005)
sys.exit(1 if os.path.exists({MARKER!r}) else 0)
"""


@attrs.frozen
class _Trigger:
    """When an outside writer moves main: ``after`` seconds from now, or once ``flag`` exists.

    A flag-triggered writer that sees ``finished`` set before its flag appears
    (no check ever ran) writes nothing, in both runs alike.
    """

    after: float | None = None
    flag: Path | None = None
    finished: threading.Event = attrs.field(factory=threading.Event)

    def wait(self) -> bool:
        """Wait for the moment; whether to write."""
        if self.after is not None:
            time.sleep(self.after)
            return True
        assert self.flag is not None
        while not self.flag.exists():
            if self.finished.wait(0.005):
                return self.flag.exists()
        return True


def _outside_writer(repo: Repo, name: str, when: _Trigger) -> threading.Thread:
    """A thread that, at ``when``, commits the file ``name`` onto main.

    It retries while main moves under it or its lock is taken: it is an
    ordinary writer, racing the integrator, at a moment no one chose. It
    creates ``<flag>.done`` once main has moved, for the check waiting on it.
    """

    def write() -> None:
        if not when.wait():
            return
        blob = repo.git("hash-object", "-w", "--stdin", stdin=f"{name}\n".encode())
        while True:
            old = repo.main()
            lines = [line for line in repo.git("ls-tree", old).split("\n") if line]
            lines.append(f"100644 blob {blob}\t{name}")
            tree = repo.git("mktree", stdin="".join(f"{line}\n" for line in lines).encode())
            new = repo.git("commit-tree", tree, "-p", old, stdin=f"outside: {name}".encode())
            try:
                repo.git("update-ref", "refs/heads/main", new, old)
            except GitCommandFailed:
                time.sleep(0.01)
                continue
            break
        if when.flag is not None:
            when.flag.with_name(when.flag.name + ".done").touch()

    thread = threading.Thread(target=write, name=f"outside-writer {name}")
    thread.start()
    return thread


@attrs.frozen
class Result:
    """What a whole run produced, as the serial and the chained runs must agree on it."""

    integrated: tuple[str, ...]
    blocked: dict[str, Reason]
    tree: str
    # Not compared: main's first-parent history with each commit's changed
    # paths, so that a tree difference names where the two runs parted.
    history: str = attrs.field(eq=False, repr=lambda h: "\n" + h)


def _run(make_repo: MakeRepo, plan: ChainPlan, concurrency: int | None) -> Result:
    """Build the plan's repository and integrate its queue serially (``None``) or chained."""
    repo = make_repo()
    tips = repo.build(plan.repo)
    script = repo.path.parent / "check.py"
    script.write_text(CHECK)
    env = dict(os.environ)
    writers: list[tuple[threading.Thread, _Trigger]] = []
    if plan.outside_writer:
        flag = repo.path.parent / "moved"
        env.update(MOVER_FLAG=str(flag))
        first = _Trigger(flag=flag)
        writers.append((_outside_writer(repo, "outside.txt", first), first))
    applier = GitApplier(
        repo.path, checks=[CheckSpec("marker", (sys.executable, str(script)))], check_env=env
    )
    store = SQLiteStore(repo.path.parent / "db.sqlite3")
    try:
        engine = Engine(store)
        for branch in plan.repo.branches:
            engine.submit(CandidateKey(branch.slug, branch.name, tips[branch.name]))
        if plan.outside_after is not None:
            later = _Trigger(after=plan.outside_after)
            writers.append((_outside_writer(repo, "outside-2.txt", later), later))
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
        for thread, trigger in writers:
            trigger.finished.set()
            thread.join()
        assert engine.verify() == []
        assert store.integrity_problems() == []
        assert store.leases() == []
        assert not store.candidates(State.APPLYING)
        assert not store.candidates(State.PENDING)
        assert repo.scratch_leftovers() == []
        blocked = {r.key.slug: r.reason for r in store.blocked_records()}
        history = repo.git(
            "log", "--first-parent", "--format=%h %s", "--name-status", "refs/heads/main"
        )
        return Result(integrated, blocked, repo.git("rev-parse", "refs/heads/main^{tree}"), history)
    finally:
        for _thread, trigger in writers:
            trigger.finished.set()
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
    assert chained == serial, (
        f"main, chained:\n{chained.history}\n\nmain, serial:\n{serial.history}"
    )
