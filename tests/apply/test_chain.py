"""Speculative chains on real repositories and a real SQLite file: order, culprits, main moved."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mergegate.apply import CheckSpec, GitApplier, integrate_chain
from mergegate.apply.audit import repository_violations
from mergegate.apply.testing import TestRepo as Repo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    CandidateKey,
    Engine,
    Event,
    Evidence,
    InvalidInput,
    LeaseHeld,
    Reason,
    State,
)

from ..procio import wait_until

MakeRepo = Callable[..., Repo]

# Fails when the merge holds FAIL; sleeps a little so that links overlap.
CHECK = (
    "import os, sys, time\n"
    "time.sleep(float(os.environ.get('CHECK_SLEEP', '0.2')))\n"
    "sys.exit(1 if os.path.exists('FAIL') else 0)\n"
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """An Engine on a fresh SQLite file."""
    store = SQLiteStore(tmp_path / "db.sqlite3")
    yield Engine(store)
    store.close()


@pytest.fixture
def check(tmp_path: Path) -> CheckSpec:
    """The sleeping marker check."""
    script = tmp_path / "check.py"
    script.write_text(CHECK)
    return CheckSpec("marker", (sys.executable, str(script)), timeout=60)


def submit(engine: Engine, repo: Repo, name: str, edits: dict[str, str | None]) -> str:
    """Branch ``name`` off main with ``edits``, submitted; return its sha."""
    sha = repo.commit(f"refs/heads/{name}", repo.main(), edits)
    engine.submit(CandidateKey(name, name, sha))
    return sha


def evidence(engine: Engine, blocked_id: int) -> Evidence:
    """The evidence of a blocked outcome's last occurrence."""
    return engine.store.occurrences(blocked_id)[-1].report.evidence


def notes(engine: Engine, slug: str) -> list[tuple[Event, str | None]]:
    """``slug``'s log as (event, note) pairs."""
    return [(t.event, t.reason) for t in engine.store.history(engine.get(slug).id)]


def test_a_failing_link_in_the_middle_blocks_only_its_candidate(
    engine: Engine, repo: Repo, check: CheckSpec
) -> None:
    """c2 fails its check: c2 alone is blocked, c3 and c4 are requeued, retested, integrated."""
    base = repo.main()
    submit(engine, repo, "c1", {"f1": "1\n"})
    submit(engine, repo, "c2", {"f2": "2\n", "FAIL": "x\n"})
    submit(engine, repo, "c3", {"f3": "3\n"})
    submit(engine, repo, "c4", {"f4": "4\n"})
    applier = GitApplier(repo.path, checks=[check])
    run = integrate_chain(engine, applier, owner="chain", concurrency=4)
    assert run.integrated == ("c1", "c3", "c4")
    assert run.blocked == ("c2",)
    assert run.requeued == 2
    assert repo.files(repo.main()) == {"a", "b", "c", "f1", "f3", "f4"}
    first_parents = repo.git("rev-list", "--first-parent", f"{base}..{repo.main()}").split()
    assert len(first_parents) == 3
    blocked = engine.show("c2").blocked
    assert blocked is not None
    assert blocked.reason is Reason.CHECKS_FAILED
    # Blocked against main as it was when c2 was the head: c1 integrated.
    c1_main = engine.store.history(engine.get("c1").id)[-1].reason
    assert c1_main == f"main={blocked.main_sha}"
    for slug in ("c3", "c4"):
        assert (Event.REQUEUE, "rebuilt: base invalidated by c2 (checks_failed)") in notes(
            engine, slug
        )
        assert [e for e, _ in notes(engine, slug)].count(Event.START_APPLY) == 2
    assert Event.REQUEUE not in [e for e, _ in notes(engine, "c1")]
    assert engine.verify() == []
    assert engine.store.leases() == []
    store = engine.store
    found = repository_violations(applier.git, applier.main_ref, store.candidates(), store.log())
    assert found == []
    assert repo.scratch_leftovers() == []


def test_a_conflicting_link_leaves_the_links_after_it_standing(
    engine: Engine, repo: Repo, check: CheckSpec
) -> None:
    """c2 conflicts with c1: blocked; c3, built past it, is never requeued."""
    submit(engine, repo, "c1", {"a": "one\n"})
    submit(engine, repo, "c2", {"a": "two\n"})
    submit(engine, repo, "c3", {"b": "three\n"})
    run = integrate_chain(engine, GitApplier(repo.path, checks=[check]), owner="o", concurrency=3)
    assert run.integrated == ("c1", "c3")
    assert run.blocked == ("c2",)
    assert run.requeued == 0
    blocked = engine.show("c2").blocked
    assert blocked is not None
    assert blocked.reason is Reason.MERGE_CONFLICT
    assert evidence(engine, blocked.id).conflicted_paths == ("a",)
    assert engine.verify() == []


def test_a_precondition_failing_in_the_middle_blames_only_its_candidate(
    engine: Engine, repo: Repo, check: CheckSpec
) -> None:
    """c2's branch is deleted after it was queued: c2 is blocked precondition_failed, alone."""
    submit(engine, repo, "c1", {"f1": "1\n"})
    submit(engine, repo, "c2", {"f2": "2\n"})
    submit(engine, repo, "c3", {"f3": "3\n"})
    repo.git("update-ref", "-d", "refs/heads/c2")
    run = integrate_chain(engine, GitApplier(repo.path, checks=[check]), owner="o", concurrency=3)
    assert run.integrated == ("c1", "c3")
    assert run.blocked == ("c2",)
    assert run.requeued == 0
    blocked = engine.show("c2").blocked
    assert blocked is not None
    assert blocked.reason is Reason.PRECONDITION_FAILED
    # Against main as it was when c2 reached the head: c1 in it.
    assert blocked.main_sha == repo.parents(repo.main())[0]


def test_main_moved_by_another_writer_rebuilds_the_chain(
    engine: Engine, repo: Repo, tmp_path: Path
) -> None:
    """An outside commit lands during the first check: every link is rebuilt on it."""
    flag = tmp_path / "moved"
    script = tmp_path / "mover.sh"
    script.write_text(
        f'if [ ! -e "{flag}" ]; then touch "{flag}"; '
        f'old=$(git -C "{repo.path}" rev-parse refs/heads/main); '
        f'tree=$(git -C "{repo.path}" rev-parse "$old^{{tree}}"); '
        f'new=$(echo outside | git -C "{repo.path}" commit-tree "$tree" -p "$old"); '
        f'git -C "{repo.path}" update-ref refs/heads/main "$new" "$old"; fi; sleep 0.2\n'
    )
    mover = CheckSpec("mover", ("/bin/sh", str(script)), timeout=60)
    for i in range(3):
        submit(engine, repo, f"c{i}", {f"f{i}": f"{i}\n"})
    outside_before = repo.main()
    run = integrate_chain(engine, GitApplier(repo.path, checks=[mover]), owner="o", concurrency=3)
    assert run.integrated == ("c0", "c1", "c2")
    assert run.requeued == 3
    assert (Event.REQUEUE, None) not in notes(engine, "c0")
    why = [n for e, n in notes(engine, "c1") if e is Event.REQUEUE]
    assert len(why) == 1
    assert why[0] is not None
    assert why[0].startswith(f"rebuilt: main moved by another writer (from {outside_before[:12]}")
    history = repo.git("rev-list", "--first-parent", repo.main()).split()
    assert outside_before in history
    assert engine.verify() == []


def test_main_moving_every_time_blocks_the_head_as_serially(
    engine: Engine, repo: Repo, tmp_path: Path
) -> None:
    """A writer that moves main during every check: the head is blocked main_moved, bounded."""
    script = tmp_path / "mover.sh"
    script.write_text(
        f'old=$(git -C "{repo.path}" rev-parse refs/heads/main); '
        f'tree=$(git -C "{repo.path}" rev-parse "$old^{{tree}}"); '
        f'new=$(echo outside | git -C "{repo.path}" commit-tree "$tree" -p "$old"); '
        f'git -C "{repo.path}" update-ref refs/heads/main "$new" "$old"\n'
    )
    mover = CheckSpec("mover", ("/bin/sh", str(script)), timeout=60)
    submit(engine, repo, "c0", {"f0": "0\n"})
    applier = GitApplier(repo.path, checks=[mover], max_main_retries=1)
    run = integrate_chain(engine, applier, owner="o", concurrency=2)
    assert run.blocked == ("c0",)
    blocked = engine.show("c0").blocked
    assert blocked is not None
    assert blocked.reason is Reason.MAIN_MOVED
    assert len(evidence(engine, blocked.id).main_attempts) == 2


def test_the_chain_lease_refuses_other_owners_and_expires(
    engine: Engine, repo: Repo, tmp_path: Path
) -> None:
    """While a chain lease is held, another owner cannot start; the holder joins it."""
    submit(engine, repo, "c1", {"f1": "1\n"})
    submit(engine, repo, "c2", {"f2": "2\n"})
    engine.hold_lease("chain")
    with pytest.raises(LeaseHeld):
        engine.start_apply("c1", owner="other")
    with pytest.raises(LeaseHeld):
        engine.hold_lease("chain")
    assert engine.start_apply("c1", owner="chain").candidate.state is State.APPLYING
    assert engine.start_apply("c2", owner="chain").candidate.state is State.APPLYING
    assert [c.key.slug for c in engine.chain_links(engine.store.leases()[0])] == ["c1", "c2"]
    assert engine.release_lease("other") is False
    with pytest.raises(InvalidInput, match="concurrency"):
        integrate_chain(engine, GitApplier(repo.path), owner="x", concurrency=0)


def test_recover_settles_every_link_of_an_expired_chain_lease(
    engine: Engine, repo: Repo, tmp_path: Path
) -> None:
    """A chain whose lease expired: the link main has is integrated, the others requeued."""
    submit(engine, repo, "c1", {"f1": "1\n"})
    submit(engine, repo, "c2", {"f2": "2\n"})
    engine.hold_lease("chain")
    engine.start_apply("c1", owner="chain")
    engine.start_apply("c2", owner="chain")
    # c1's move happened, then the integrator died before it logged it.
    applier = GitApplier(repo.path)
    built = applier.build(engine.get("c1").key)
    assert not hasattr(built, "report")
    repo.git("update-ref", "refs/heads/main", built.commit)  # type: ignore[union-attr]
    later = Engine(engine.store, clock=lambda: engine.clock() + engine.lease_ttl * 2)
    with applier.hold_main() as held:
        outcomes = later.recover(
            held.main_sha, contains=lambda s: applier.contains(s, held.main_sha)
        )
    assert [(o.candidate.key.slug, o.candidate.state) for o in outcomes] == [
        ("c1", State.INTEGRATED),
        ("c2", State.PENDING),
    ]
    assert notes(engine, "c2")[-1][1] is not None
    assert "interrupted" in (notes(engine, "c2")[-1][1] or "")
    assert engine.store.leases() == []
    assert engine.verify() == []
    assert engine.store.integrity_problems() == []


VICTIM = """\
import sys
from datetime import timedelta
from mergegate.apply import CheckSpec, GitApplier, integrate_chain
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import Engine
db, repo, script = sys.argv[1:]
engine = Engine(SQLiteStore(db), lease_ttl=timedelta(seconds=1))
check = CheckSpec("stall", (sys.executable, script), timeout=60)
applier = GitApplier(repo, checks=[check], heartbeat_every=0.2)
integrate_chain(engine, applier, owner="victim", concurrency=3)
"""

# c2's check says it is running, then waits while the file ``pause`` says "hold"
# (at most 60 s). A fixed sleep let a loaded machine end c2's check, and move c2,
# before the test had seen c1 integrated and stopped the integrator.
STALL = """\
import os, sys, time
from pathlib import Path
here = Path(sys.argv[0]).parent
if os.environ["MERGEGATE_SLUG"] == "c2":
    (here / "ready").touch()
    end = time.monotonic() + 60
    while (here / "pause").read_text() == "hold" and time.monotonic() < end:
        time.sleep(0.01)
time.sleep(0.1)
"""


def stop_outside_a_transaction(proc: subprocess.Popen[str], db: Path) -> None:
    """SIGSTOP ``proc`` at a moment it holds no SQLite write lock (else no one could write)."""
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        probe = sqlite3.connect(db, timeout=0)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return
        except sqlite3.OperationalError:
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()
    pytest.fail("the integrator always held the database")


@pytest.mark.parametrize("how", [signal.SIGSTOP, signal.SIGKILL], ids=["stall", "kill"])
def test_an_interrupted_chain_is_recovered_with_nothing_half_integrated(
    engine: Engine, repo: Repo, tmp_path: Path, how: signal.Signals
) -> None:
    """Stall or kill the integrator mid-chain: recover requeues its links, main moves no more."""
    for i in range(1, 5):
        submit(engine, repo, f"c{i}", {f"f{i}": f"{i}\n"})
    script = tmp_path / "stall.py"
    script.write_text(STALL)
    (tmp_path / "pause").write_text("hold")
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, str(tmp_path / "db.sqlite3"), str(repo.path), str(script)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def c1_done_in_c2s_check() -> bool:
            assert victim.poll() is None, victim.communicate()[1]
            return (tmp_path / "ready").exists() and engine.get("c1").state is not State.APPLYING

        wait_until(
            c1_done_in_c2s_check,
            lambda: (
                f"c1 integrated while c2's check ran (ready: {(tmp_path / 'ready').exists()}, "
                f"c1: {engine.get('c1').state}, c2: {engine.get('c2').state})"
            ),
        )
        if how is signal.SIGSTOP:
            stop_outside_a_transaction(victim, tmp_path / "db.sqlite3")
        else:
            victim.send_signal(how)
        after_c1 = repo.main()
        wait_until(
            lambda: engine.store.leases()[0].expires_at <= engine.clock(),
            lambda: f"the lease to expire: {engine.store.leases()} at {engine.clock()}",
        )
        applier = GitApplier(repo.path, checks=[CheckSpec("ok", ("true",))])
        with applier.hold_main(break_stale=True) as held:
            outcomes = engine.recover(
                held.main_sha, contains=lambda s: applier.contains(s, held.main_sha)
            )
        settled = {o.candidate.key.slug: o.candidate.state for o in outcomes}
        # c4 joined the chain when c1 left it, unless the signal came first.
        assert settled.keys() in ({"c2", "c3"}, {"c2", "c3", "c4"})
        assert set(settled.values()) == {State.PENDING}
        assert engine.get("c1").state is State.INTEGRATED
        assert engine.store.candidates(State.APPLYING) == []
        (tmp_path / "pause").write_text("go")
        if how is signal.SIGSTOP:
            victim.send_signal(signal.SIGCONT)
        victim.wait(timeout=30)
    finally:
        (tmp_path / "pause").write_text("go")
        victim.kill()
        _, said = victim.communicate()
    if how is signal.SIGSTOP:
        # It woke up, found its lease gone at its next heartbeat, and stopped.
        assert victim.returncode == 1
        assert "LeaseHeld" in said
    assert repo.main() == after_c1
    assert engine.verify() == []
    assert engine.store.integrity_problems() == []
    applier.cleanup_stale()
    applier.close()
    # Nothing lost: a new chain integrates the rest.
    (tmp_path / "pause").write_text("0")
    check = CheckSpec("stall", (sys.executable, str(script)), timeout=60)
    with GitApplier(repo.path, checks=[check]) as again:
        run = integrate_chain(engine, again, owner="b", concurrency=3)
    assert sorted(run.integrated) == ["c2", "c3", "c4"]
    assert repo.files(repo.main()) >= {"f1", "f2", "f3", "f4"}
    assert repo.scratch_leftovers() == []
