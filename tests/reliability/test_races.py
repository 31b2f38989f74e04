"""Races between separate processes on one store, one repository and one todos folder."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mergegate.apply import GitApplier
from mergegate.followups import roadmap_slugs
from mergegate.statemachine import BlockedReport, CandidateKey, Evidence, Reason, State

from ..procio import LiveOutput, wait_until

SLOW = pytest.mark.slow
WORKERS = Path(__file__).resolve().parent / "workers.py"


def blocked_candidate(world: Any, engine: Any, slug: str, *, remediate: bool = False) -> str:
    """Submit ``slug``, take the lease, report it blocked; return its sha."""
    sha = world.commit(f"work/{slug}", {f"files/{slug}": "x\n"})
    engine.submit(CandidateKey(slug, f"work/{slug}", sha))
    engine.start_apply(slug, owner="setup")
    report = BlockedReport(Reason.EXTERNAL, world.main(), Evidence(diagnostic="setup"))
    engine.block(slug, report)
    if remediate:
        engine.start_remediation(slug)
    return sha


def run_duplicate_blocks(world: Any, kit: Any, tally: Counter[str], n_rounds: int) -> None:
    store = world.open()
    engine = world.engine(store)
    racers = 4
    for i in range(n_rounds):
        slug = f"dup-{i}"
        sha = world.commit(f"work/{slug}", {f"files/{slug}": "x\n"})
        engine.submit(CandidateKey(slug, f"work/{slug}", sha))
        started = engine.start_apply(slug, owner="setup")
        cmd = ["block", world.url, str(world.todos), slug, world.main()]
        outputs = kit.race(world.tmp, *[cmd] * racers)
        tally["races_run"] += 1
        results = [line.split() for out in outputs for line in out if line != "READY"]
        assert all(r[0] == "OK" for r in results), results
        assert sorted(r[1] for r in results) == ["block"] * racers
        seqs = sorted(int(r[2]) for r in results)
        assert seqs == list(range(started.candidate.seq + 1, started.candidate.seq + 1 + racers))
        record = store.blocked_record(CandidateKey(slug, f"work/{slug}", sha))
        assert record is not None
        assert record.occurrences == racers
        assert len(store.occurrences(record.id)) == racers
        found = kit.problems(world, store, set())
        tally["duplicated_races"] += sum("times" in p for p in found)
        tally["lost_races"] += sum("missing" in p for p in found)
        assert found == []
    store.close()


def test_duplicate_blocked_reports(world: Any, kit: Any, tally: Counter[str]) -> None:
    """Four processes report one candidate blocked at once: one block, three replays, one todo."""
    run_duplicate_blocks(world, kit, tally, 1)


@SLOW
def test_duplicate_blocked_reports_many(world: Any, kit: Any, tally: Counter[str]) -> None:
    """Twenty rounds of four simultaneous blocked reports; one todo and one entry each round."""
    run_duplicate_blocks(world, kit, tally, 20)


HUMAN_ROADMAP = """\
# The roadmap. Keep the first entry first: it blocks the release.
- slug: first-thing  # a human's note on the first entry
  description: the most important thing
# a comment between entries
- slug: second-thing
  group: humans
"""


def run_roadmap_writers(tmp_path: Path, kit: Any, tally: Counter[str], n_rounds: int) -> None:
    for i in range(n_rounds):
        path = tmp_path / f"round-{i}" / "roadmap.yaml"
        path.parent.mkdir()
        path.write_text(HUMAN_ROADMAP)
        shared = [f"shared-{k}" for k in range(5)]
        commands = [
            ["roadmap", str(path), *[f"w{w}-entry-{k}" for k in range(12)], *shared]
            for w in range(4)
        ]
        outputs = kit.race(tmp_path, *commands)
        tally["races_run"] += 1
        added = [line.split() for out in outputs for line in out if line.startswith("OK")]
        assert len(added) == 4 * 17
        # Each shared slug was added by exactly one writer; every other writer saw it there.
        assert Counter(a[1] for a in added if a[2] == "True") == Counter(
            [*[f"w{w}-entry-{k}" for w in range(4) for k in range(12)], *shared]
        )
        slugs = roadmap_slugs(path)
        counts = Counter(slugs)
        tally["duplicated_races"] += sum(c - 1 for c in counts.values())
        expected = {"first-thing", "second-thing", *shared}
        expected |= {f"w{w}-entry-{k}" for w in range(4) for k in range(12)}
        tally["lost_races"] += len(expected - set(slugs))
        assert slugs[:2] == ["first-thing", "second-thing"]
        assert set(slugs) == expected
        assert len(slugs) == len(expected)
        text = path.read_text()
        for line in HUMAN_ROADMAP.splitlines():
            assert line in text


def test_concurrent_roadmap_writers(tmp_path: Path, kit: Any, tally: Counter[str]) -> None:
    """Four processes add 17 entries each, 5 shared: none lost, none doubled, comments kept."""
    run_roadmap_writers(tmp_path, kit, tally, 1)


@SLOW
def test_concurrent_roadmap_writers_many(tmp_path: Path, kit: Any, tally: Counter[str]) -> None:
    """Ten rounds of four concurrent roadmap writers: none lost, none doubled, comments kept."""
    run_roadmap_writers(tmp_path, kit, tally, 10)


def run_lease_contention(world: Any, kit: Any, tally: Counter[str], n_cands: int) -> None:
    store = world.open()
    engine = world.engine(store)
    for i in range(n_cands):
        slug = f"lease-{i}"
        sha = world.commit(f"work/{slug}", {f"files/{slug}": "x\n"})
        engine.submit(CandidateKey(slug, f"work/{slug}", sha))
    cmd = ["integrate", world.url, str(world.repo), str(world.todos)]
    outputs = kit.race(world.tmp, cmd, cmd, cmd)
    tally["races_run"] += 1
    applied = [line.split() for out in outputs for line in out if line.startswith("OK")]
    tally["lease_contentions"] += sum(line == "LEASE_HELD" for out in outputs for line in out)
    assert sorted(a[1] for a in applied) == sorted(f"lease-{i}" for i in range(n_cands))
    assert {a[3] for a in applied} == {"integrated"}
    assert len(store.candidates(State.INTEGRATED)) == n_cands
    found = kit.problems(world, store, set())
    tally["duplicated_races"] += sum("times" in p for p in found)
    assert found == []
    store.close()


def test_lease_contention(world: Any, kit: Any, tally: Counter[str]) -> None:
    """Three integrators drain one queue: each candidate integrated once, main merged once each."""
    run_lease_contention(world, kit, tally, 4)


@SLOW
def test_lease_contention_long_queue(world: Any, kit: Any, tally: Counter[str]) -> None:
    """Three integrators drain a queue of 30: each integrated once, main merged once each."""
    run_lease_contention(world, kit, tally, 30)


def run_resume_races(world: Any, kit: Any, tally: Counter[str], n_rounds: int) -> None:
    store = world.open()
    engine = world.engine(store)
    for i in range(n_rounds):
        slug = f"resume-{i}"
        old = blocked_candidate(world, engine, slug, remediate=True)
        new = world.commit(f"work/{slug}", {f"files/{slug}": "fixed\n"})
        operator = ["resume", world.url, str(world.todos), slug, new]
        integrator = ["apply", world.url, str(world.repo), str(world.todos), slug]
        first, second, applied = kit.race(world.tmp, operator, operator, integrator)
        tally["races_run"] += 1
        resumed = [line.split() for line in first + second if line != "READY"]
        assert sorted(r[0] for r in resumed) == ["ERR", "OK"], resumed
        assert [line.split() for line in applied if line != "READY"] == [["OK", new, "integrated"]]
        merged = world.git("rev-list", "--parents", "-n1", "refs/heads/main").split()
        assert merged[2] == new
        assert old not in merged
        found = kit.problems(world, store, set())
        assert found == []
    store.close()


def test_resume_races_apply(world: Any, kit: Any, tally: Counter[str]) -> None:
    """Two operators resume while an integrator applies: one resume wins, the new sha integrates."""
    run_resume_races(world, kit, tally, 1)


@SLOW
def test_resume_races_apply_many(world: Any, kit: Any, tally: Counter[str]) -> None:
    """Fifteen rounds of two resumes racing one apply: one resume wins, the new sha integrates."""
    run_resume_races(world, kit, tally, 15)


def test_recovery_of_a_stalled_apply_keeps_main(world: Any, kit: Any, tally: Counter[str]) -> None:
    """An apply outlives its lease and is recovered meanwhile: its heartbeat fails, main stays."""
    store = world.open()
    engine = world.engine(store)
    sha = world.commit("work/stall", {"files/stall": "x\n"})
    engine.submit(CandidateKey("stall", "work/stall", sha))
    main = world.main()
    go = world.tmp / "go-stall"
    cmd = ["apply-stalling", world.url, str(world.repo), str(world.todos), "stall", str(go)]
    proc = subprocess.Popen(
        [sys.executable, str(WORKERS), *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    # Leaving the block kills the stalled child if an assertion failed first.
    with LiveOutput(proc) as live:
        assert live.wait_for(lambda line: True) == ["READY"], live.report()
        go.touch()
        wait_until(
            lambda: engine.get("stall").state is State.APPLYING,
            lambda: f"stall applying (state read: {engine.get('stall').state})",
            timeout=10,
            alive=[live],
        )
        applier = GitApplier(world.repo)

        def recovered_now() -> list[Any]:
            with applier.hold_main() as held:
                return engine.recover(held.main_sha, contains=applier.contains)

        # The lease (0.3 s) expires while the check stalls: it ends only when released.
        outcomes = wait_until(
            recovered_now, "recover to settle the expired lease of stall", timeout=10, alive=[live]
        )
        (go.parent / f"{go.name}.release").touch()
        code, out, err = live.finish(timeout=60)
    assert code == 0, err
    [recovered] = outcomes
    tally["races_run"] += 1
    # Requeued at its place: the stall was the integrator's, not the candidate's.
    assert recovered.state is State.PENDING
    assert recovered.blocked is None
    assert out.split()[1:3] == ["ERR", "LeaseHeld"], out
    assert world.main() == main
    assert kit.problems(world, store, set()) == []
    store.close()
