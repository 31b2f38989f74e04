"""Submit-to-start latency of an idle integrator: waiting on the change feed vs a 1 s poll.

Run it as a script::

    .venv/bin/python benchmarks/bench_feed.py            # SQLite
    .venv/bin/python benchmarks/bench_feed.py --pg URL   # and PostgreSQL

An integrator thread (a store of its own) waits for work; the main thread (a
store of its own) submits a candidate at staggered moments. The latency is
from the submit call to the integrator's ``start_apply`` commit, the same work
in both modes: only how the idle integrator learns of the submit differs
(``wait_for_change`` on the feed, or ``time.sleep(1.0)`` between polls, as
``mergegate run`` did). It prints the median, p90 and max of each, and the
ratio of the medians. It asserts nothing about the numbers.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mergegate.persistence import PostgresStore, SQLiteStore
from mergegate.statemachine import CandidateKey, ChangeFeed, Engine

ROUNDS = 12
POLL = 1.0
MAIN = "f" * 40


def measure(open_store: Callable[[], Any], mode: str, rounds: int) -> list[float]:
    """Latencies (s) of ``rounds`` submits picked up by an idle integrator in ``mode``."""
    started: dict[str, float] = {}
    got = threading.Condition()
    stop = threading.Event()

    def integrator() -> None:
        store = open_store()
        engine = Engine(store, actor="bench")
        assert isinstance(store, ChangeFeed)
        try:
            while not stop.is_set():
                cursor = store.feed_head()
                outcome = engine.start_next(owner="bench")
                if outcome is None:
                    if mode == "feed":
                        store.wait_for_change(cursor, 5.0)
                    else:
                        time.sleep(POLL)
                    continue
                at = time.monotonic()
                slug = outcome.candidate.key.slug
                engine.integrate(slug, main_sha=MAIN)
                with got:
                    started[slug] = at
                    got.notify_all()
        finally:
            store.close()

    thread = threading.Thread(target=integrator)
    thread.start()
    submitter = open_store()
    engine = Engine(submitter, actor="bench")
    latencies = []
    try:
        time.sleep(0.3)  # the integrator is idle, waiting
        for n in range(rounds):
            # Staggered against the poll's phase: n * 0.37 s modulo the interval.
            time.sleep(0.2 + (n * 0.37) % POLL)
            slug = f"{mode}-{n}"
            sha = f"{n + 1:x}".rjust(40, "a" if mode == "feed" else "b")
            began = time.monotonic()
            engine.submit(CandidateKey(slug, slug, sha))
            with got:
                got.wait_for(lambda slug=slug: slug in started, timeout=30)  # type: ignore[misc]
            assert slug in started, f"{slug} was never started"
            latencies.append(started[slug] - began)
    finally:
        stop.set()
        engine.submit(CandidateKey(f"{mode}-stop", f"{mode}-stop", "c" * 40))
        thread.join()
        submitter.close()
    return latencies


def report(name: str, open_store: Callable[[], Any], rounds: int) -> None:
    """Measure both modes on one backend and print the figures."""
    results = {mode: measure(open_store, mode, rounds) for mode in ("feed", "poll")}
    print(f"## {name}: submit-to-start latency of an idle integrator ({rounds} submits each)")
    print("| mode | median ms | p90 ms | max ms |")
    print("|---|---|---|---|")
    for mode, values in results.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
        print(
            f"| {mode} | {statistics.median(values) * 1000:.1f} | {p90 * 1000:.1f} "
            f"| {max(values) * 1000:.1f} |"
        )
    ratio = statistics.median(results["feed"]) / statistics.median(results["poll"])
    print(f"ratio of medians, feed / 1 s poll: {ratio:.4f}\n")


def main() -> None:
    """Run the benchmark on SQLite, and on PostgreSQL when ``--pg`` is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL (a schema is created)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-feed-"))
    report("SQLite", lambda: SQLiteStore(folder / "feed.sqlite3"), args.rounds)
    if args.pg:
        import psycopg

        schema = f"bench_feed_{int(time.time())}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        try:
            report("PostgreSQL", lambda: PostgresStore(args.pg, schema=schema), args.rounds)
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
