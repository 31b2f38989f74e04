"""Concurrency on PostgreSQL between separate processes (spawned, each its own session).

The default run uses reduced sizes; the ``slow`` variants run the full ones
(8 processes x 50 reports, 2 integrators x 200 candidates).
"""

from __future__ import annotations

import importlib
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from psycopg import sql

from mergegate.followups import roadmap_slugs
from mergegate.persistence import PostgresStore
from mergegate.statemachine import CandidateKey, Engine, Event, LeaseHeld, State

pytestmark = pytest.mark.postgres

_spawn = multiprocessing.get_context("spawn")


@pytest.fixture
def pg_workers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The worker module, importable by name in spawned children (they inherit sys.path)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return importlib.import_module("pg_workers")


def _in_processes(target: Callable[..., None], argsets: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Run ``target(*args, queue, name)`` in a spawned process per argset; results by name."""
    queue: Any = _spawn.Queue()
    procs = [
        _spawn.Process(target=target, args=(*args, queue, f"p{i}"))
        for i, args in enumerate(argsets)
    ]
    for proc in procs:
        proc.start()
    results = {}
    try:
        for _ in procs:
            name, status, value = queue.get(timeout=600)
            assert status == "ok", f"process {name} failed:\n{value}"
            results[name] = value
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
        queue.close()
        queue.join_thread()
    return results


@pytest.mark.parametrize("rounds", [10, pytest.param(50, marks=pytest.mark.slow)])
def test_eight_processes_report_one_blocked_outcome_at_once(
    pg_server: str, pg: PostgresStore, pg_workers: ModuleType, tmp_path: Path, rounds: int
) -> None:
    """8 reports at once per candidate: one follow-up, one roadmap entry, 8 occurrences."""
    workers = 8
    engine = Engine(pg)
    start, done = _spawn.Barrier(workers + 1), _spawn.Barrier(workers + 1)
    slugs = [f"blk-{i}" for i in range(rounds)]
    todos = tmp_path / "todos"
    todos.mkdir()
    argsets = [(pg_server, pg.schema, slugs, str(todos), (start, done))] * workers

    def drive() -> None:
        for slug in slugs:
            engine.submit(CandidateKey(slug, slug, "c" * 40))
            engine.start_apply(slug, owner="setup")
            start.wait(timeout=120)
            done.wait(timeout=120)

    queue: Any = _spawn.Queue()
    procs = [
        _spawn.Process(target=pg_workers.block_worker, args=(*a, queue, f"p{i}"))
        for i, a in enumerate(argsets)
    ]
    for proc in procs:
        proc.start()
    try:
        drive()
        results = [queue.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
        queue.close()
        queue.join_thread()
    failures = [value for _, status, value in results if status != "ok"]
    assert failures == []
    reports = Counter(slug for _, _, seqs in results for slug, _ in seqs)
    assert reports == dict.fromkeys(slugs, workers)

    follow_ups = []
    for slug in slugs:
        candidate = pg.candidate(slug)
        assert candidate is not None
        assert (candidate.state, candidate.seq) == (State.BLOCKED, 2 + workers)
        history = pg.history(candidate.id)
        assert [t.source for t in history if t.event is Event.BLOCK].count(State.APPLYING) == 1
        record = pg.blocked_record(candidate.key)
        assert record is not None
        assert record.occurrences == reports[slug]
        assert [o.number for o in pg.occurrences(record.id)] == list(range(1, workers + 1))
        follow_ups.append(record.follow_up_slug)
    jobs = pg.follow_up_jobs(include_done=True)
    assert sorted(j.follow_up_slug for j in jobs) == sorted(follow_ups)
    assert all(j.done for j in jobs)
    assert sorted(roadmap_slugs(todos / "roadmap.yaml")) == sorted(follow_ups)
    assert sorted(p.name for p in todos.iterdir() if p.is_dir()) == sorted(follow_ups)
    assert pg.leases() == []
    assert engine.verify() == []
    assert pg.integrity_problems() == []


@pytest.mark.parametrize("candidates", [40, pytest.param(200, marks=pytest.mark.slow)])
def test_two_integrators_apply_each_candidate_once(
    pg_server: str, pg: PostgresStore, pg_workers: ModuleType, candidates: int
) -> None:
    """Two integrator processes: each candidate applied once, main moved once per candidate."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg.schema or "")))
        for statement in pg_workers.MAIN_TABLES:
            conn.execute(statement)
        engine = Engine(pg)
        with engine.batch() as batch:
            for i in range(candidates):
                batch.submit(CandidateKey(f"c-{i}", f"c-{i}", f"{i:040x}"))
        start = _spawn.Barrier(2)
        results = _in_processes(
            pg_workers.integrator, [(pg_server, pg.schema, start), (pg_server, pg.schema, start)]
        )
        moves = conn.execute("SELECT slug, old, new FROM main_moves ORDER BY id").fetchall()
        main = conn.execute("SELECT sha FROM fake_main").fetchall()

    assert sum(r["applied"] for r in results.values()) == candidates
    assert len(moves) == candidates
    assert len({slug for slug, _, _ in moves}) == candidates
    assert all(moves[i][1] == moves[i - 1][2] for i in range(1, len(moves)))
    assert main == [(moves[-1][2],)]
    for candidate in pg.candidates():
        assert candidate.state is State.INTEGRATED
        events = [t.event for t in pg.history(candidate.id)]
        assert events == [Event.SUBMIT, Event.START_APPLY, Event.INTEGRATE]
    assert pg.leases() == []
    assert engine.verify() == []
    assert pg.integrity_problems() == []


def test_concurrent_submits_of_one_slug_see_each_other(
    pg_server: str, pg: PostgresStore, pg_workers: ModuleType
) -> None:
    """8 processes submit one new identity at once: one creates it, the rest see it, no errors."""
    workers, rounds = 8, 5
    same = [CandidateKey(f"same-{r}", f"same-{r}", "d" * 40) for r in range(rounds)]
    # Rival identities for one slug: one wins, the others are told it is taken.
    rivals = [
        [CandidateKey(f"rival-{r}", f"rival-{r}", f"{w:040x}") for r in range(rounds)]
        for w in range(workers)
    ]
    barrier = _spawn.Barrier(workers)
    results = _in_processes(
        pg_workers.submit_worker,
        [(pg_server, pg.schema, same + rivals[w], barrier) for w in range(workers)],
    )
    answers: dict[str, Counter[str]] = {}
    for seen in results.values():
        for slug, answer in seen:
            answers.setdefault(slug, Counter())[answer] += 1
    for r in range(rounds):
        assert answers[f"same-{r}"] == {"new": 1, "same": workers - 1}
        assert answers[f"rival-{r}"] == {"new": 1, "duplicate": workers - 1}
    assert sorted(c.seq for c in pg.candidates()) == [1] * (2 * rounds)
    assert Engine(pg).verify() == []
    assert pg.integrity_problems() == []


def test_killed_integrator_lease_expires_and_is_recovered(
    pg_server: str, pg: PostgresStore, pg_workers: ModuleType
) -> None:
    """An integrator killed mid-apply leaves its lease; once expired, another host recovers it."""
    engine = Engine(pg)
    engine.submit(CandidateKey("doomed", "doomed", "e" * 40))
    engine.submit(CandidateKey("after", "after", "f" * 40))
    ready = _spawn.Event()
    proc = _spawn.Process(
        target=pg_workers.hanging_integrator, args=(pg_server, pg.schema, 1.5, ready)
    )
    proc.start()
    try:
        assert ready.wait(timeout=120), "the integrator never took the lease"
        proc.kill()
        proc.join(timeout=30)
        [lease] = pg.leases()
        assert lease.owner == "doomed"
        assert engine.recover("0" * 40) == []
        with pytest.raises(LeaseHeld):
            engine.start_apply("after", owner="survivor")
        time.sleep(max(0.0, (lease.expires_at - datetime.now(UTC)).total_seconds()) + 0.05)
        [recovered] = engine.recover("0" * 40)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()
    # The integrator's death is not the candidate's fault: requeued at its place, logged.
    assert (recovered.candidate.key.slug, recovered.state) == ("doomed", State.PENDING)
    assert recovered.blocked is None
    assert recovered.transition is not None
    assert recovered.transition.event is Event.REQUEUE
    assert pg.leases() == []
    assert engine.start_apply("after", owner="survivor").state is State.APPLYING
    assert engine.verify() == []
    assert pg.integrity_problems() == []
