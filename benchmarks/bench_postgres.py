"""PostgreSQL throughput: psycopg's raw insert-and-commit against mergegate's transitions.

Run it as a script (``python benchmarks/bench_postgres.py``) or call :func:`run`.
It uses the server in ``MERGEGATE_TEST_PG`` (default: the local test server),
works in a throw-away schema and drops it afterwards.

Measured in the same run, interleaved round by round so that load on the
machine hits every figure alike:

- raw: one psycopg connection inserting one row and committing, with psycopg's
  defaults (``execute(INSERT)`` then ``commit()``) and in autocommit mode;
- mergegate: persisted transitions per second (each one its own committed
  transaction) with 1 and with 4 worker processes, each driving its own
  candidates through submit, start_apply, block, start_remediation, resume,
  start_apply, integrate (seven transitions per candidate).

Rounds are short and many, so a burst of load from elsewhere on the machine
hits one round, not one figure. Each figure is the median of its rounds after
a warm-up round; the ratio is also given as the median of per-round ratios. Targets:
mergegate >= 0.7 of raw, and 4 workers faster than 1. The numbers are printed,
never asserted.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
MOVES_PER_CYCLE = 7
_spawn = multiprocessing.get_context("spawn")


def _worker(url: str, schema: str, wid: int, barrier: Any, commands: Any, results: Any) -> None:
    """Drive disjoint candidates through their lifecycle whenever told to, and report timings."""
    from mergegate.persistence import PostgresStore
    from mergegate.persistence.contract import conflict_report
    from mergegate.statemachine import CandidateKey, Engine

    store = PostgresStore(url, schema=schema)
    # Its own lease per worker: the workers are independent queues, not rivals.
    engine = Engine(store, lease_name=f"bench-{wid}", actor=f"bench-{wid}")
    report = conflict_report("src/app.py")
    while (command := commands.get()) is not None:
        label, cycles = command
        barrier.wait()
        started = time.perf_counter()
        for i in range(cycles):
            slug = f"w{wid}-{label}-{i}"
            engine.submit(CandidateKey(slug, slug, "a" * 40))
            engine.start_apply(slug, owner="bench")
            engine.block(slug, report)
            engine.start_remediation(slug)
            engine.resume(slug, force_reason="benchmark")
            engine.start_apply(slug, owner="bench")
            engine.integrate(slug, main_sha="b" * 40)
        results.put((started, time.perf_counter(), cycles * MOVES_PER_CYCLE))
    store.close()


class _Pool:
    """``size`` worker processes, kept alive across rounds so each round is warm."""

    def __init__(self, url: str, schema: str, size: int) -> None:
        self.barrier = _spawn.Barrier(size)
        self.results: Any = _spawn.Queue()
        self.commands: list[Any] = [_spawn.Queue() for _ in range(size)]
        self.procs = [
            _spawn.Process(
                target=_worker, args=(url, schema, size * 10 + i, self.barrier, q, self.results)
            )
            for i, q in enumerate(self.commands)
        ]
        for proc in self.procs:
            proc.start()

    def rate(self, label: str, cycles: int) -> float:
        """Transitions per second across all workers, from the first start to the last end."""
        for q in self.commands:
            q.put((label, cycles))
        runs = [self.results.get(timeout=600) for _ in self.procs]
        elapsed = max(end for _, end, _ in runs) - min(start for start, _, _ in runs)
        return sum(n for _, _, n in runs) / elapsed

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for proc in self.procs:
            proc.join(timeout=60)


def _raw_rate(url: str, schema: str, rows: int, *, autocommit: bool) -> float:
    """Single-row INSERT then commit, ``rows`` times, on one connection; rows per second."""
    with psycopg.connect(url, autocommit=autocommit) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("SET synchronous_commit TO on")
        conn.commit()
        started = time.perf_counter()
        for i in range(rows):
            conn.execute("INSERT INTO raw_insert (slug, at) VALUES (%s, now())", (f"r{i}",))
            if not autocommit:
                conn.commit()
        return rows / (time.perf_counter() - started)


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
    pools = {1: _Pool(url, schema, 1), 4: _Pool(url, schema, 4)}
    figures: dict[str, list[float]] = {k: [] for k in ("raw", "raw_autocommit", "mg1", "mg4")}
    try:
        for n in range(rounds + 1):
            sample = {
                "raw": _raw_rate(url, schema, rows, autocommit=False),
                "raw_autocommit": _raw_rate(url, schema, rows, autocommit=True),
                "mg1": pools[1].rate(f"r{n}", cycles),
                "mg4": pools[4].rate(f"r{n}", cycles),
            }
            if n == 0:
                continue  # the warm-up round: connections, prepared statements, caches
            for key, value in sample.items():
                figures[key].append(value)
    finally:
        for pool in pools.values():
            pool.close()
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    medians = {k: statistics.median(v) for k, v in figures.items()}
    per_round_ratio = [m / r for m, r in zip(figures["mg1"], figures["raw"], strict=True)]
    return {
        "rounds": rounds,
        "transitions_per_worker_round": rows,
        "runs": figures,
        "median": medians,
        "ratio_to_raw": medians["mg1"] / medians["raw"],
        "ratio_to_raw_per_round_median": statistics.median(per_round_ratio),
        "ratio_to_raw_autocommit": medians["mg1"] / medians["raw_autocommit"],
        "scaling_4_to_1": medians["mg4"] / medians["mg1"],
        "cpus": os.cpu_count(),
    }


def _table(result: dict[str, Any]) -> str:
    names = {
        "raw": "psycopg raw insert+commit (execute, commit)",
        "raw_autocommit": "psycopg raw insert, autocommit",
        "mg1": "mergegate transitions/s, 1 worker",
        "mg4": "mergegate transitions/s, 4 workers",
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
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(_table(run(rounds=int(sys.argv[1]) if len(sys.argv) > 1 else 15)))
