"""PostgreSQL throughput: psycopg's raw insert-and-commit against mergegate's transitions.

Run it as a script (``python benchmarks/bench_postgres.py``) or call :func:`run`.
It uses the server in ``MERGEGATE_TEST_PG`` (default: the local test server),
works in a throw-away schema and drops it afterwards.

Measured in the same run, interleaved round by round so that load on the
machine hits every figure alike:

- raw: one psycopg connection inserting one row and committing, with psycopg's
  defaults (``execute(INSERT)`` then ``commit()``) and in autocommit mode;
- raw with ``synchronous_commit = off``: beside the raw figure, the
  difference is what the commit's WAL flush (the fsync) costs in this run;
- equal work: the statements the PostgreSQL store issues for the seven moves,
  written by hand (``equal_work.PG_CYCLE``) on one connection, checked in the
  same run against the server's statement log of the store: the five plain
  moves are one ``mergegate_move`` call each in autocommit (the fast path),
  block and start_remediation a pipelined ``BEGIN`` .. ``COMMIT``, as the
  store sends them: the same statements in the same round trips (11 per
  cycle, counted with libpq's trace);
- mergegate: persisted transitions per second (each one its own committed
  transaction) with 1 and with 4 worker processes, each driving its own
  candidates through submit, start_apply, block, start_remediation, resume,
  start_apply, integrate (seven transitions per candidate). All workers share
  one queue (one schema) and ONE integration lease, as real integrators do: a
  worker whose ``start_apply`` finds the lease held retries it 1 ms later.

Rounds are short and many, so a burst of load from elsewhere on the machine
hits one round, not one figure. Each figure is the median of its rounds after
a warm-up round; the ratio is also given as the median of per-round ratios. Targets:
mergegate >= 0.7 of raw, and 4 workers faster than 1. The numbers are printed,
never asserted.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from equal_work import PG_CYCLE, drift, postgres_round_trips, postgres_shapes
from psycopg import sql

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
# Where Debian's server writes its log; the statement check reads it when it can.
PG_LOG = Path(
    os.environ.get("MERGEGATE_BENCH_PG_LOG", "/var/log/postgresql/postgresql-15-main.log")
)
MOVES_PER_CYCLE = 7
_spawn = multiprocessing.get_context("spawn")


def _worker(
    url: str, schema: str, wid: int, barrier: Any, commands: Any, results: Any, own_lease: bool
) -> None:
    """Drive disjoint candidates through their lifecycle whenever told to, and report timings."""
    from mergegate.persistence import PostgresStore
    from mergegate.persistence.contract import conflict_report
    from mergegate.statemachine import CandidateKey, Engine, LeaseHeld

    store = PostgresStore(url, schema=schema)
    # One queue and one lease for every worker, as real integrators share them;
    # with ``own_lease``, a lease per worker: the store alone, no lease to wait for.
    lease = f"main-{wid}" if own_lease else "main"
    engine = Engine(store, actor=f"bench-{wid}", lease_name=lease)
    report = conflict_report("src/app.py")
    owner = f"bench-{wid}"

    def start(slug: str) -> int:
        waits = 0
        while True:
            try:
                engine.start_apply(slug, owner=owner)
                return waits
            except LeaseHeld:
                # Another integrator holds the lease: poll again shortly, as an
                # integrator's loop would, rather than spin on the two cores.
                waits += 1
                time.sleep(0.001)

    while (command := commands.get()) is not None:
        label, cycles = command
        barrier.wait()
        started = time.perf_counter()
        waits = 0
        for i in range(cycles):
            slug = f"w{wid}-{label}-{i}"
            engine.submit(CandidateKey(slug, slug, "a" * 40))
            waits += start(slug)
            engine.block(slug, report)
            engine.start_remediation(slug)
            engine.resume(slug, force_reason="benchmark")
            waits += start(slug)
            engine.integrate(slug, main_sha="b" * 40)
        results.put((started, time.perf_counter(), cycles * MOVES_PER_CYCLE, waits))
    store.close()


class _Pool:
    """``size`` worker processes, kept alive across rounds so each round is warm."""

    def __init__(self, url: str, schema: str, size: int, own_lease: bool = False) -> None:
        self.barrier = _spawn.Barrier(size)
        self.results: Any = _spawn.Queue()
        self.commands: list[Any] = [_spawn.Queue() for _ in range(size)]
        self.procs = [
            _spawn.Process(
                target=_worker,
                args=(
                    url,
                    schema,
                    size * 10 + i + 100 * own_lease,
                    self.barrier,
                    q,
                    self.results,
                    own_lease,
                ),
            )
            for i, q in enumerate(self.commands)
        ]
        for proc in self.procs:
            proc.start()

    def rate(self, label: str, cycles: int) -> tuple[float, int]:
        """Transitions/s across all workers (first start to last end), and lease-held retries."""
        for q in self.commands:
            q.put((label, cycles))
        runs = [self.results.get(timeout=600) for _ in self.procs]
        elapsed = max(r[1] for r in runs) - min(r[0] for r in runs)
        return sum(r[2] for r in runs) / elapsed, sum(r[3] for r in runs)

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=60)


def _raw_rate(
    url: str, schema: str, rows: int, *, autocommit: bool, synchronous: bool = True
) -> float:
    """Single-row INSERT then commit, ``rows`` times, on one connection; rows per second."""
    with psycopg.connect(url, autocommit=autocommit) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(f"SET synchronous_commit TO {'on' if synchronous else 'off'}")
        conn.commit()
        started = time.perf_counter()
        for i in range(rows):
            conn.execute("INSERT INTO raw_insert (slug, at) VALUES (%s, now())", (f"r{i}",))
            if not autocommit:
                conn.commit()
        return rows / (time.perf_counter() - started)


_REPORT = json.dumps(
    {"detail": None, "reason": "merge_conflict", "main_sha": "0" * 40,
     "evidence": {"files": [], "checks": [], "diagnostic": None, "lease_owner": None,
                  "lease_since": None, "main_attempts": [], "conflicted_paths": ["src/app.py"]}},
    sort_keys=True,
)  # fmt: skip


# The lifecycle table's fast-path steps of each event, as the array literals the
# store sends (source states, destinations, then the flags active, queued,
# take_lease, release_lease, close_blocked).
_SUBMIT = ("{NULL}", "{pending}", "{t}", "{t}", "{f}", "{f}", "{f}")
_START = ("{pending,retry}", "{applying,applying}", "{t,t}", "{f,f}", "{t,t}", "{f,f}", "{f,f}")
_INTEGRATE = ("{applying}", "{integrated}", "{f}", "{f}", "{f}", "{t}", "{f}")


class _EqualWork:
    """The store's statements for figure 8's seven moves, by hand, on one connection."""

    def __init__(self, url: str, schema: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        self.conn.execute("SET synchronous_commit TO on")
        self.serial = 0

    def cycle(self) -> None:
        """One candidate through the seven moves: seven transactions, five of them one call."""
        ex = self.conn.execute
        self.serial += 1
        slug, sha, actor = f"eq-{self.serial}", "a" * 40, "bench"
        branch, k1, k2, lease = slug, 1_234_567, 7_654_321, "main"
        fu = f"{slug}-integration-blocked-aaaaaaa"
        submit, start, block, remediate, resume, start2, integrate = PG_CYCLE

        def now() -> datetime:
            return datetime.now(UTC)

        def fast(text: str, event: str, steps: tuple[str, ...], note: Any, owner: Any = None,
                 key: tuple[Any, Any] = (None, None), main: Any = None) -> Any:  # fmt: skip
            """The fast path's one call, in autocommit: one transaction, one round trip."""
            at = now()
            expires = None if owner is None else at + timedelta(minutes=10)
            row = ex(text, (slug, k1, *key, event, *steps, None, at, actor, note, lease, k2,
                            owner, expires, main, None), prepare=True).fetchone()  # fmt: skip
            if row is None:
                # A declined call wrote nothing: the baseline would do less work than the store.
                raise RuntimeError(f"equal work: mergegate_move declined {event} of {slug}")
            return row

        def move(text: str, cid: int, seq: int, event: str, src: Any, dest: str, why: Any,
                 flag: Any = None) -> None:  # fmt: skip
            """The candidate update and its entry, one statement."""
            at = now()
            flags = () if flag is None else (flag,)
            ex(text, (dest, seq, at, *flags, cid, seq - 1, seq, event, src, dest, sha, actor, at,
                      why, None, None, None, None, None))  # fmt: skip

        cid = fast(submit[0], "submit", _SUBMIT, None, key=(branch, sha))[0]
        fast(start[0], "start_apply", _START, f"lease owner={actor}", owner=actor)
        # The general path's transactions are pipelined, as the store sends them: a
        # statement whose result is not read travels with the next read or the COMMIT.
        with self.conn.pipeline():
            ex(block[0])
            ex(block[1], (k1,))
            ex(block[2], (slug,)).fetchone()
            move(block[3], cid, 3, "block", "applying", "blocked", "merge_conflict")
            ex(block[4], (fu,)).fetchall()
            at = now()
            outcome = ex(block[5], (slug, branch, sha, "merge_conflict", "0" * 40, fu, None, at,
                                    at)).fetchone()  # fmt: skip
            bid, number = outcome[0], outcome[13]  # its id and occurrences
            ex(block[6], (bid, number, 3, at, _REPORT))
            ex(block[7], (fu, bid, at))
            ex(block[8], (lease, cid))
            ex(block[9])
        with self.conn.pipeline():
            ex(remediate[0])
            ex(remediate[1], (k1,))
            ex(remediate[2], (slug,)).fetchone()
            move(remediate[3], cid, 4, "start_remediation", "blocked", "remediating", None)
            ex(remediate[4])
        with self.conn.pipeline():
            ex(resume[0])
            ex(resume[1], (k1,))
            ex(resume[2], (slug,)).fetchone()
            move(resume[3], cid, 5, "resume", "remediating", "retry", "forced: benchmark", True)
            ex(resume[4], (cid,))
            ex(resume[5], (now(), slug, branch, sha))
            ex(resume[6])
        fast(start2[0], "start_apply", _START, f"lease owner={actor}", owner=actor)
        fast(integrate[0], "integrate", _INTEGRATE, "main=" + "b" * 40, main="b" * 40)

    def rate(self, cycles: int) -> float:
        started = time.perf_counter()
        for _ in range(cycles):
            self.cycle()
        return cycles * MOVES_PER_CYCLE / (time.perf_counter() - started)

    def close(self) -> None:
        self.conn.close()


def _statement_check(url: str, schema: str, equal: _EqualWork) -> str:
    """Compare the store's statements (server log) and the hand-written ones with PG_CYCLE."""
    from mergegate.persistence import PostgresStore
    from mergegate.persistence.contract import conflict_report
    from mergegate.statemachine import CandidateKey, Engine

    store = PostgresStore(url, schema=schema)
    engine = Engine(store, actor="bench")

    def cycle() -> None:
        slug = f"check-{uuid.uuid4().hex[:8]}"
        engine.submit(CandidateKey(slug, slug, "a" * 40))
        engine.start_apply(slug, owner="bench")
        engine.block(slug, conflict_report("src/app.py"))
        engine.start_remediation(slug)
        engine.resume(slug, force_reason="benchmark")
        engine.start_apply(slug, owner="bench")
        engine.integrate(slug, main_sha="b" * 40)

    try:
        captured = postgres_shapes(store._conn, cycle, PG_LOG)
        written = postgres_shapes(equal.conn, equal.cycle, PG_LOG)
        # On sessions the cycles above warmed: their statements are prepared.
        trips = postgres_round_trips(store._conn, cycle)
        by_hand = postgres_round_trips(equal.conn, equal.cycle)
    finally:
        store.close()
    if trips != by_hand:
        return f"WARNING: baseline out of date: {trips} round trips per cycle, {by_hand} by hand"
    if captured is None or written is None:
        return f"statements NOT re-checked this run: cannot read the server log {PG_LOG}"
    differs = drift(captured, PG_CYCLE) or drift(written, PG_CYCLE)
    if differs:
        return f"WARNING: baseline out of date: {differs}"
    return (
        f"{len(captured) / MOVES_PER_CYCLE:.1f} statements and {trips / MOVES_PER_CYCLE:.1f} "
        "round trips per move (BEGIN and COMMIT included), checked against the server's "
        "statement log and libpq's trace this run"
    )


def run(rounds: int = 15, cycles: int = 10, url: str | None = None) -> dict[str, Any]:
    """Measure everything in one run; return medians, per-round figures and ratios."""
    url = url or os.environ.get("MERGEGATE_TEST_PG", DEFAULT_PG)
    schema = f"mg_bench_{uuid.uuid4().hex[:8]}"
    rows = cycles * MOVES_PER_CYCLE
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        admin.execute(
            sql.SQL(
                "CREATE TABLE {}.raw_insert (id bigint GENERATED ALWAYS AS IDENTITY "
                "PRIMARY KEY, slug text NOT NULL, at timestamptz NOT NULL)"
            ).format(sql.Identifier(schema))
        )
    from mergegate.persistence import PostgresStore

    PostgresStore(url, schema=schema).close()
    pools = {
        "1": _Pool(url, schema, 1),
        "4": _Pool(url, schema, 4),
        "4own": _Pool(url, schema, 4, own_lease=True),
    }
    equal = _EqualWork(url, schema)
    keys = ("raw", "raw_autocommit", "raw_sync_off", "equal", "mg1", "mg4", "mg4own")
    figures: dict[str, list[float]] = {k: [] for k in keys}
    lease_waits = 0
    try:
        checked = _statement_check(url, schema, equal)
        for n in range(rounds + 1):
            sample = {
                "raw": _raw_rate(url, schema, rows, autocommit=False),
                "raw_autocommit": _raw_rate(url, schema, rows, autocommit=True),
                "raw_sync_off": _raw_rate(url, schema, rows, autocommit=False, synchronous=False),
                "equal": equal.rate(cycles),
                "mg1": pools["1"].rate(f"r{n}", cycles)[0],
                "mg4own": pools["4own"].rate(f"r{n}", cycles)[0],
            }
            sample["mg4"], waits = pools["4"].rate(f"r{n}", cycles)
            if n == 0:
                continue  # the warm-up round: connections, prepared statements, caches
            lease_waits += waits
            for key, value in sample.items():
                figures[key].append(value)
    finally:
        equal.close()
        for pool in pools.values():
            pool.close()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    medians = {k: statistics.median(v) for k, v in figures.items()}
    per_round_ratio = [m / r for m, r in zip(figures["mg1"], figures["raw"], strict=True)]
    per_round_equal = [m / r for m, r in zip(figures["mg1"], figures["equal"], strict=True)]
    fsync = [
        1 / on - 1 / off for on, off in zip(figures["raw"], figures["raw_sync_off"], strict=True)
    ]
    return {
        "ratio_to_equal_work_per_round_median": statistics.median(per_round_equal),
        "fsync_us_per_commit": statistics.median(fsync) * 1e6,
        "statements": checked,
        "lease_waits_4_workers": lease_waits,
        "rounds": rounds,
        "transitions_per_worker_round": rows,
        "runs": figures,
        "median": medians,
        "ratio_to_raw": medians["mg1"] / medians["raw"],
        "ratio_to_raw_per_round_median": statistics.median(per_round_ratio),
        "ratio_to_raw_autocommit": medians["mg1"] / medians["raw_autocommit"],
        "scaling_4_to_1": medians["mg4"] / medians["mg1"],
        "scaling_4_own_leases_to_1": medians["mg4own"] / medians["mg1"],
        "cpus": os.cpu_count(),
    }


def _table(result: dict[str, Any]) -> str:
    names = {
        "raw": "psycopg raw insert+commit (execute, commit)",
        "raw_autocommit": "psycopg raw insert, autocommit",
        "raw_sync_off": "psycopg raw insert+commit, synchronous_commit=off",
        "equal": "mergegate's statements by hand, 1 connection",
        "mg1": "mergegate transitions/s, 1 worker",
        "mg4": "mergegate transitions/s, 4 workers",
        "mg4own": "mergegate transitions/s, 4 workers, own leases",
    }
    lines = [
        f"PostgreSQL benchmark: {result['rounds']} rounds after a warm-up, "
        f"{result['transitions_per_worker_round']} transitions per worker per round, "
        f"{result['cpus']} CPUs",
        f"{'figure':<46}{'median/s':>10}  runs/s",
    ]
    for key, label in names.items():
        runs = " ".join(f"{v:.0f}" for v in result["runs"][key])
        lines.append(f"{label:<46}{result['median'][key]:>10.0f}  {runs}")
    lines += [
        f"{'ratio mergegate(1) / raw insert+commit':<46}{result['ratio_to_raw']:>10.2f}"
        f"  (target >= 0.70; per-round median {result['ratio_to_raw_per_round_median']:.2f})",
        f"{'ratio mergegate(1) / raw autocommit insert':<46}"
        f"{result['ratio_to_raw_autocommit']:>10.2f}",
        f"{'scaling 4 workers / 1 worker':<46}{result['scaling_4_to_1']:>10.2f}  (target > 1)",
        f"{'scaling 4 workers, own leases / 1 worker':<46}"
        f"{result['scaling_4_own_leases_to_1']:>10.2f}  (target > 1.5)",
        f"{'ratio mergegate(1) / equal work by hand':<46}"
        f"{result['ratio_to_equal_work_per_round_median']:>10.2f}  (per-round median)",
        f"fsync cost per commit: {result['fsync_us_per_commit']:.0f} us; "
        f"lease-held retries of 4 workers: {result['lease_waits_4_workers']}",
        f"statements: {result['statements']}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(_table(run(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 15)))
