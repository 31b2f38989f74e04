"""The queue in the API: positions, the next actionable candidate, supersede on submit,
waiting for the lease, taking over an expired one, and run_queue's summary."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mergegate.apply import CheckSpec, GitApplier, branch_tip
from mergegate.statemachine import (
    CandidateKey,
    DuplicateCandidate,
    Engine,
    Event,
    LeaseHeld,
    Outcome,
    Reason,
    RunSummary,
    State,
    Store,
    next_actionable,
    queue,
    run_queue,
    start_apply_waiting,
    start_next_waiting,
)

from ..gitrepo import git, init_repo

MAIN = "f" * 40


def key(n: int, sha: str | None = None) -> CandidateKey:
    """Candidate number ``n`` (at ``sha`` if given)."""
    return CandidateKey(f"c{n}", f"c{n}", sha or f"{n:x}".rjust(40, "a"))


def test_positions_and_the_next_actionable_candidate(store: Store) -> None:
    """Queued candidates are numbered in claim order; a blocked one is off the queue."""
    engine = Engine(store)
    for n in range(4):
        engine.submit(key(n))
    engine.start_apply("c0", owner="w")
    assert next_actionable(store) == store.candidate("c1")
    rows = [(e.candidate.key.slug, e.position) for e in queue(store)]
    assert rows == [("c0", None), ("c1", 1), ("c2", 2), ("c3", 3)]
    queued = [(e.candidate.key.slug, e.position) for e in queue(store, states=[State.PENDING])]
    assert queued == [("c1", 1), ("c2", 2), ("c3", 3)]
    with pytest.raises(LeaseHeld):
        engine.start_next(owner="x")  # the queue's head waits for the lease


def test_submit_supersedes_a_queued_sha_when_asked(store: Store) -> None:
    """submit(supersede=True) moves a pending candidate to the new sha, logged as supersede."""
    engine = Engine(store)
    engine.submit(key(1))
    new = key(1, "b" * 40)
    with pytest.raises(DuplicateCandidate):
        engine.submit(new)  # without supersede: the slug is held by the old sha
    moved = engine.submit(new, supersede=True)
    assert moved.candidate.key == new
    assert moved.transition is not None
    assert moved.transition.event is Event.SUPERSEDE
    again = engine.submit(new, supersede=True)
    assert again.transition is None  # the same identity again: a no-op


def test_supersede_is_refused_once_an_apply_took_the_candidate(store: Store) -> None:
    """An applying candidate is not superseded: the submit raises, nothing moves."""
    engine = Engine(store)
    engine.submit(key(1))
    engine.start_apply("c1", owner="w")
    with pytest.raises(DuplicateCandidate):
        engine.submit(key(1, "b" * 40), supersede=True)
    assert engine.get("c1").key.sha == key(1).sha


def test_a_waiter_gets_the_lease_when_it_is_released(store: Store) -> None:
    """start_apply_waiting returns soon after the holder's integrate releases the lease."""
    engine = Engine(store)
    engine.submit(key(1))
    engine.submit(key(2))
    engine.start_apply("c1", owner="a")
    with pytest.raises(LeaseHeld):
        start_apply_waiting(engine, "c2", owner="b", timeout=0.1)
    timer = threading.Timer(0.2, lambda: engine.integrate("c1", main_sha=MAIN))
    timer.start()
    began = time.monotonic()
    started = start_apply_waiting(engine, "c2", owner="b", timeout=20)
    waited = time.monotonic() - began
    timer.join()
    assert started.state is State.APPLYING
    assert waited < 20, f"waited the whole timeout ({waited:.2f} s) for a released lease"


def test_start_next_waiting_waits_for_work(store: Store) -> None:
    """An empty queue is waited on until a submit arrives; a timeout returns None."""
    engine = Engine(store)
    assert start_next_waiting(engine, owner="w", timeout=0.05) is None
    timer = threading.Timer(0.2, lambda: engine.submit(key(5)))
    timer.start()
    started = start_next_waiting(engine, owner="w", timeout=20)
    timer.join()
    assert started is not None
    assert started.candidate.key.slug == "c5"


@pytest.fixture
def integration(tmp_path: Path) -> tuple[Path, str]:
    """A bare integration repository with main and a branch c1 one commit ahead."""
    work = init_repo(tmp_path / "work")
    (work / "a.txt").write_text("a\n")
    git(work, "add", "a.txt")
    git(work, "commit", "-qm", "base")
    bare = init_repo(tmp_path / "integration.git", bare=True)
    git(work, "push", "-q", str(bare), "HEAD:main")
    git(work, "checkout", "-qb", "c1")
    (work / "b.txt").write_text("b\n")
    git(work, "add", "b.txt")
    git(work, "commit", "-qm", "c1")
    git(work, "push", "-q", str(bare), "c1")
    return bare, branch_tip(bare, "c1")


def test_an_expired_lease_is_taken_over_in_one_call(
    store: Store, integration: tuple[Path, str]
) -> None:
    """A dead holder's expired lease is recovered (logged) and the waiter's apply starts."""
    bare, tip = integration
    engine = Engine(store)
    applier = GitApplier(bare)
    engine.submit(CandidateKey("c1", "c1", tip))
    engine.submit(key(2))
    engine.start_apply("c1", owner="dead", ttl=timedelta(milliseconds=300))
    started = start_apply_waiting(engine, "c2", owner="alive", timeout=20, applier=applier)
    assert started.state is State.APPLYING
    events = [t.event for t in engine.store.history(engine.get("c1").id)]
    assert events[-1] in {Event.INTERRUPT, Event.REQUEUE}, events
    if events[-1] is Event.INTERRUPT:
        shown = engine.show("c1")
        assert shown.blocked is not None
        assert shown.blocked.reason is Reason.APPLY_INTERRUPTED


def test_run_queue_applies_everything_and_sums_it_up(
    store: Store, integration: tuple[Path, str]
) -> None:
    """run_queue integrates the queue through a real applier and returns its summary."""
    bare, tip = integration
    engine = Engine(store)
    engine.submit(CandidateKey("c1", "c1", tip))
    summary = run_queue(engine, GitApplier(bare), owner="runner")
    assert (summary.handled, summary.integrated, summary.blocked) == (1, 1, 0)
    assert [o.state for o in summary.outcomes] == [State.INTEGRATED]
    assert summary.seconds > 0
    assert 0 < summary.busy <= summary.seconds
    assert summary.per_busy_minute == summary.handled / summary.busy * 60
    assert branch_tip(bare, "main") != tip  # a merge commit containing it


def test_a_summary_that_does_not_keep_counts_only(
    store: Store, integration: tuple[Path, str]
) -> None:
    """counted(keep=False), as the all-day CLI run counts, keeps counts and no outcome."""
    bare, tip = integration
    engine = Engine(store)
    engine.submit(CandidateKey("c1", "c1", tip))
    outcome = engine.apply_next(GitApplier(bare), owner="runner")
    assert outcome is not None
    kept, counted = RunSummary().counted(outcome), RunSummary().counted(outcome, keep=False)
    assert (counted.handled, counted.integrated, counted.outcomes) == (1, 1, ())
    assert kept.outcomes == (outcome,)
    assert RunSummary().per_busy_minute == 0.0


@pytest.fixture
def three(tmp_path: Path) -> tuple[Path, list[CandidateKey]]:
    """A bare integration repository and branches c0, c1, c2, each adding a file of its own."""
    work = init_repo(tmp_path / "work")
    (work / "a.txt").write_text("a\n")
    git(work, "add", "a.txt")
    git(work, "commit", "-qm", "base")
    bare = init_repo(tmp_path / "integration.git", bare=True)
    git(work, "push", "-q", str(bare), "HEAD:main")
    keys = []
    for n in range(3):
        git(work, "checkout", "-q", "-b", f"c{n}", "main")
        (work / f"c{n}.txt").write_text(f"{n}\n")
        git(work, "add", f"c{n}.txt")
        git(work, "commit", "-qm", f"c{n}")
        git(work, "push", "-q", str(bare), f"c{n}")
        keys.append(CandidateKey(f"c{n}", f"c{n}", branch_tip(bare, f"c{n}")))
    return bare, keys


def _wait_for(fact: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait until ``fact()`` holds; fail naming ``what`` at the timeout."""
    deadline = time.monotonic() + timeout
    while not fact():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_run_queue_waits_for_a_live_holder_then_drains_the_queue(
    store: Store, three: tuple[Path, list[CandidateKey]], tmp_path: Path
) -> None:
    """With the lease held by a live integrator, run_queue waits (idle_timeout 0: returns)."""
    bare, keys = three
    engine = Engine(store)
    for k in keys:
        engine.submit(k)
    gate = tmp_path / "gate"
    slow = GitApplier(
        bare,
        checks=[
            CheckSpec("gate", ("sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.02; done', str(gate)))
        ],
    )
    other: list[Outcome] = []
    holder = threading.Thread(target=lambda: other.append(engine.apply("c0", slow, owner="other")))
    holder.start()
    _wait_for(lambda: [le.owner for le in store.leases()] == ["other"], "the other's lease")
    applier = GitApplier(bare)
    began = time.monotonic()
    at_once = run_queue(engine, applier, owner="me")  # idle_timeout=0: a live lease, no wait
    assert (at_once.handled, at_once.recovered) == (0, 0)
    assert time.monotonic() - began < 10
    threading.Timer(0.3, gate.touch).start()
    done = run_queue(
        engine,
        applier,
        owner="me",
        idle_timeout=60,
        stop=lambda: engine.get("c2").state is State.INTEGRATED,
    )
    holder.join()
    assert [o.state for o in other] == [State.INTEGRATED]
    assert (done.handled, done.integrated, done.recovered) == (2, 2, 0)
    assert done.seconds < 60, "waited out the idle timeout instead of the release"


@pytest.mark.parametrize("queued", [2, 0], ids=["two-queued", "none-queued"])
def test_run_queue_takes_over_an_expired_lease(
    store: Store,
    three: tuple[Path, list[CandidateKey]],
    queued: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A dead holder's expired lease is recovered (logged, counted), then everything integrates."""
    bare, keys = three
    engine = Engine(store)
    for k in keys[: 1 + queued]:
        engine.submit(k)
    engine.start_apply("c0", owner="dead", ttl=timedelta(milliseconds=50))
    _wait_for(lambda: store.leases()[0].expires_at <= engine.clock(), "the lease to expire")
    caplog.set_level(logging.INFO, logger="mergegate.transitions")
    summary = run_queue(engine, GitApplier(bare), owner="me")
    assert (summary.handled, summary.integrated, summary.recovered) == (1 + queued, 1 + queued, 1)
    requeued = [t for t in store.history_of("c0") if t.event is Event.REQUEUE]
    assert [t.reason is not None and t.reason.startswith("interrupted: ") for t in requeued] == [
        True
    ]
    assert any(
        "event=requeue" in r.getMessage() and "slug=c0" in r.getMessage() for r in caplog.records
    )


def test_lease_held_says_how_to_wait_from_python_and_from_the_cli(store: Store) -> None:
    """LeaseHeld names start_apply_waiting and `mergegate recover`; its expiry is a datetime."""
    engine = Engine(store)
    engine.submit(key(1))
    engine.submit(key(2))
    engine.start_apply("c1", owner="a")
    with pytest.raises(LeaseHeld) as caught:
        engine.start_apply("c2", owner="b")
    err = caught.value
    assert isinstance(err.expires_at, datetime)
    assert err.expires_at > engine.clock()
    message = str(err)
    assert "\n" not in message
    assert err.expires_at.isoformat() in message
    assert "start_apply_waiting" in message
    assert "`mergegate recover`" in message
