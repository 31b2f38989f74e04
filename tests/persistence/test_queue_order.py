"""Queue order is part of the promise: candidates are applied in submission order.

Two integrators on one PostgreSQL queue (threads, and spawned processes, each
with its own store) drain 40 candidates; the order ``main`` moved in is
compared with the order they were submitted in. Before the stored queue
position and the serialized claim, SKIP LOCKED passed a head that the losing
claimer held for a moment, 2-7 inversions per 40 candidates.
"""

from __future__ import annotations

import importlib
import multiprocessing
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from psycopg import sql

from mergegate.persistence import PostgresStore, SQLiteStore
from mergegate.statemachine import CandidateKey, Engine, Event, LeaseHeld, Reason, State, Store

_spawn = multiprocessing.get_context("spawn")
CANDIDATES = 40
RUNS = 10


@pytest.fixture
def pg_workers(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The worker module, importable by name in spawned children (they inherit sys.path)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    return importlib.import_module("pg_workers")


def inversions(applied: list[str], submitted: list[str]) -> int:
    """Pairs applied in the other order than submitted (0 when the orders agree)."""
    rank = {slug: i for i, slug in enumerate(submitted)}
    order = [rank[s] for s in applied]
    return sum(
        1 for i in range(len(order)) for j in range(i + 1, len(order)) if order[i] > order[j]
    )


def test_inversions_counts_pairs() -> None:
    """The measure itself: a sorted list has none, one swap one, a reversal all pairs."""
    assert inversions(["a", "b", "c"], ["a", "b", "c"]) == 0
    assert inversions(["b", "a", "c"], ["a", "b", "c"]) == 1
    assert inversions(["c", "b", "a"], ["a", "b", "c"]) == 3


@pytest.fixture
def fresh_schema(pg_server: str) -> Iterator[Any]:
    """A factory of fresh schemas on the test server; every one is dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        name = f"mg_order_{len(made)}_{time.monotonic_ns() % 10**9}"
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        made.append(name)
        return name

    yield make
    with psycopg.connect(pg_server, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _prepare(pg_server: str, schema: str, pg_workers: ModuleType) -> list[str]:
    """Create the fake main and submit CANDIDATES candidates, one call each; their slugs."""
    store = PostgresStore(pg_server, schema=schema)
    try:
        with store.transaction() as tx:
            for statement in pg_workers.MAIN_TABLES:
                tx.execute(statement)
        engine = Engine(store)
        # Slugs whose text order is not their submission order, so neither an
        # order by slug nor by id alone can pass for the queue's.
        slugs = [f"c-{(i * 7) % CANDIDATES:02d}-{i}" for i in range(CANDIDATES)]
        for i, slug in enumerate(slugs):
            engine.submit(CandidateKey(slug, slug, f"{i + 1:040x}"))
        return slugs
    finally:
        store.close()


def _applied(pg_server: str, schema: str) -> tuple[list[str], list[str]]:
    """The order main moved in, and the order the store's log started the applies in."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        moves = [r[0] for r in conn.execute("SELECT slug FROM main_moves ORDER BY id")]
        starts = [
            r[0]
            for r in conn.execute(
                "SELECT c.slug FROM transitions t JOIN candidates c ON c.id = t.candidate_id "
                "WHERE t.event = 'start_apply' ORDER BY t.id"
            )
        ]
    return moves, starts


def _thread_integrator(
    pg_server: str, schema: str, pg_workers: ModuleType, name: str, start: threading.Barrier,
    errors: list[BaseException],
) -> None:  # fmt: skip
    store = PostgresStore(pg_server, schema=schema)
    applier = pg_workers.TableMain(pg_server, schema, name)
    engine = Engine(store, actor=name)
    deadline = time.monotonic() + 120
    try:
        start.wait(timeout=60)
        while time.monotonic() < deadline:
            try:
                if engine.apply_next(applier, owner=name) is None:
                    return
            except LeaseHeld:
                time.sleep(0.0005)
        raise TimeoutError(f"{name} still applying after 120 s")
    except BaseException as err:
        errors.append(err)
    finally:
        applier.close()
        store.close()


def _check_run(pg_server: str, schema: str, slugs: list[str]) -> int:
    moves, starts = _applied(pg_server, schema)
    assert sorted(moves) == sorted(slugs), f"not every candidate was applied once: {moves}"
    # The store's own log tells the same order as main.
    assert starts == moves
    return inversions(moves, slugs)


@pytest.mark.postgres
@pytest.mark.parametrize("runs", [3, pytest.param(RUNS, marks=pytest.mark.slow)])
def test_two_integrator_threads_apply_in_submission_order(
    pg_server: str, fresh_schema: Any, pg_workers: ModuleType, runs: int
) -> None:
    """Two threads, each with its own store, apply 40 candidates in order, run after run."""
    counts = []
    for _ in range(runs):
        schema = fresh_schema()
        slugs = _prepare(pg_server, schema, pg_workers)
        start = threading.Barrier(2)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(
                target=_thread_integrator,
                args=(pg_server, schema, pg_workers, f"t{i}", start, errors),
            )
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert not errors, f"an integrator thread failed: {errors!r}"
        counts.append(_check_run(pg_server, schema, slugs))
    print(f"threads: inversions per run of {CANDIDATES} candidates: {counts}")
    assert counts == [0] * runs, f"inversions per run: {counts}"


@pytest.mark.postgres
@pytest.mark.parametrize("runs", [2, pytest.param(RUNS, marks=pytest.mark.slow)])
def test_two_integrator_processes_apply_in_submission_order(
    pg_server: str, fresh_schema: Any, pg_workers: ModuleType, runs: int
) -> None:
    """Two spawned processes, each its own session, apply 40 candidates in order, run after run."""
    counts = []
    for _ in range(runs):
        schema = fresh_schema()
        slugs = _prepare(pg_server, schema, pg_workers)
        queue: Any = _spawn.Queue()
        start = _spawn.Barrier(2)
        procs = [
            _spawn.Process(
                target=pg_workers.integrator, args=(pg_server, schema, start, queue, f"p{i}")
            )
            for i in range(2)
        ]
        for proc in procs:
            proc.start()
        try:
            for _ in procs:
                name, status, value = queue.get(timeout=300)
                assert status == "ok", f"process {name} failed:\n{value}"
        finally:
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
            queue.close()
            queue.join_thread()
        counts.append(_check_run(pg_server, schema, slugs))
    print(f"processes: inversions per run of {CANDIDATES} candidates: {counts}")
    assert counts == [0] * runs, f"inversions per run: {counts}"


@pytest.mark.postgres
def test_a_claim_waits_for_the_head_instead_of_passing_it(pg_server: str, pg_schema: str) -> None:
    """While one transaction holds the claim, another waits, then reads the same head."""
    first, second = (PostgresStore(pg_server, schema=pg_schema) for _ in range(2))
    try:
        engine = Engine(first)
        for slug in ("aa", "bb"):
            engine.submit(CandidateKey(slug, slug, "a" * 40))
        claimed: list[str | None] = []
        holding = threading.Event()
        pid = second.backend_pid  # read now: the waiting thread holds the store's lock

        def other() -> None:
            holding.wait(timeout=30)
            with second.transaction() as tx:
                claimed.append(tx.claim_next())

        thread = threading.Thread(target=other)
        thread.start()
        seen: list[object] = []

        def lose_the_race() -> None:
            with first.transaction() as tx1:
                seen.append(tx1.claim_next())
                holding.set()
                # The other claim waits on the queue's lock, not passing "aa" by.
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not _waiting_on_lock(pg_server, pid):
                    time.sleep(0.01)
                seen.append(_waiting_on_lock(pg_server, pid))
                seen.append(list(claimed))
                raise LookupError("the first claimer loses the lease race and rolls back")

        with pytest.raises(LookupError):
            lose_the_race()
        thread.join(timeout=30)
        assert seen == ["aa", True, []], "first claim, second waiting, nothing claimed yet"
        assert claimed == ["aa"]
    finally:
        first.close()
        second.close()


def _waiting_on_lock(pg_server: str, pid: int) -> bool:
    with psycopg.connect(pg_server, autocommit=True) as conn:
        row = conn.execute(
            "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()
    return row is not None and row[0] == "Lock"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store of each backend."""
    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "order.sqlite3")
    else:
        opened = PostgresStore(
            request.getfixturevalue("pg_server"), schema=request.getfixturevalue("pg_schema")
        )
    yield opened
    opened.close()


def _slugs(store: Store) -> list[str]:
    return [c.key.slug for c in store.queue()]


def test_a_requeued_link_keeps_its_place(any_store: Store) -> None:
    """A link thrown back by its chain is the head again, ahead of everything after it."""
    engine = Engine(any_store)
    for slug in ("aa", "bb", "cc"):
        engine.submit(CandidateKey(slug, slug, "a" * 40))
    owner = "chain"
    engine.hold_lease(owner)
    assert engine.start_next(owner=owner) is not None
    assert engine.start_next(owner=owner) is not None
    assert _slugs(any_store) == ["cc"]
    engine.requeue("bb", why="rebuilt: base moved")
    engine.requeue("aa", why="rebuilt: base moved")
    assert _slugs(any_store) == ["aa", "bb", "cc"]
    next_ = any_store.next_candidate()
    assert next_ is not None
    assert next_.key.slug == "aa"


def test_a_resumed_candidate_goes_to_the_back(any_store: Store) -> None:
    """A resume is a re-entry: behind every candidate queued before it, as bors and Zuul do."""
    from mergegate.persistence.contract import conflict_report

    engine = Engine(any_store)
    for slug in ("aa", "bb", "cc"):
        engine.submit(CandidateKey(slug, slug, "a" * 40))
    engine.start_apply("aa", owner="me")
    engine.block("aa", conflict_report("x.py", main="0" * 40))
    engine.start_remediation("aa")
    engine.submit(CandidateKey("dd", "dd", "a" * 40))
    resumed = engine.resume("aa", force_reason="fixed by hand")
    assert resumed.state is State.RETRY
    assert _slugs(any_store) == ["bb", "cc", "dd", "aa"]
    # A later submit still goes behind it.
    engine.submit(CandidateKey("ee", "ee", "a" * 40))
    assert _slugs(any_store) == ["bb", "cc", "dd", "aa", "ee"]
    assert [t.event for t in any_store.history_of("aa")][-1] is Event.RESUME


def test_supersede_keeps_the_place(any_store: Store) -> None:
    """A force-pushed branch submitted again at a new sha keeps its place in the queue."""
    engine = Engine(any_store)
    for slug in ("aa", "bb"):
        engine.submit(CandidateKey(slug, slug, "a" * 40))
    engine.supersede("aa", new_sha="b" * 40)
    assert _slugs(any_store) == ["aa", "bb"]


def test_an_interrupted_apply_keeps_its_place(any_store: Store) -> None:
    """A restart does not reorder: requeued, or blocked thrice then resumed, it stays the head."""
    engine = Engine(any_store, lease_ttl=timedelta(seconds=1))
    for slug in ("aa", "bb"):
        engine.submit(CandidateKey(slug, slug, "a" * 40))
    engine.start_next(owner="killed")
    later = datetime.now(UTC) + timedelta(minutes=1)
    recovered = Engine(any_store, clock=lambda: later).recover("0" * 40)
    assert [(o.candidate.key.slug, o.state) for o in recovered] == [("aa", State.PENDING)]
    engine.submit(CandidateKey("cc", "cc", "a" * 40))
    assert _slugs(any_store) == ["aa", "bb", "cc"]
    started = engine.start_next(owner="killed-again")
    assert started is not None
    lease = next(le for le in any_store.leases() if le.owner == "killed-again")
    candidate = engine.get("aa")
    engine.fire(engine.interruption(candidate, "0" * 40, lease, "killed again"))
    for _ in range(2):  # the third interruption in a row blocks it apply_interrupted
        if engine.get("aa").state is State.BLOCKED:
            break
        engine.start_next(owner="killed-again")
        lease = next(le for le in any_store.leases() if le.owner == "killed-again")
        engine.fire(engine.interruption(engine.get("aa"), "0" * 40, lease, "killed again"))
    blocked = any_store.blocked_record(engine.get("aa").key)
    assert blocked is not None
    assert blocked.reason is Reason.APPLY_INTERRUPTED
    engine.start_remediation("aa")
    engine.resume("aa", force_reason="the integrator was restarted")
    assert _slugs(any_store) == ["aa", "bb", "cc"]


def test_a_resume_at_a_new_sha_goes_to_the_back_even_after_an_old_interruption(
    any_store: Store,
) -> None:
    """An old, resumed apply_interrupted outcome of the new sha does not keep the place."""
    later = [datetime.now(UTC)]
    engine = Engine(any_store, clock=lambda: later[0], lease_ttl=timedelta(seconds=1))

    def interrupt() -> None:
        # Recovery requeues an interrupted apply; the third in a row blocks it.
        for _ in range(3):
            started = engine.start_next(owner="killed")
            assert started is not None
            assert started.candidate.key.slug == "aa"
            later[0] += timedelta(minutes=1)
            engine.recover("0" * 40)
            later[0] += timedelta(seconds=1)
        assert engine.get("aa").state is State.BLOCKED
        engine.start_remediation("aa")

    engine.submit(CandidateKey("aa", "aa", "1" * 40))
    engine.submit(CandidateKey("bb", "bb", "a" * 40))
    interrupt()
    engine.resume("aa", force_reason="restarted")
    assert _slugs(any_store) == ["aa", "bb"]
    engine.supersede("aa", new_sha="2" * 40)
    interrupt()
    engine.resume("aa", new_sha="1" * 40, force_reason="back to the first sha")
    assert _slugs(any_store) == ["bb", "aa"]
