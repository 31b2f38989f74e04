"""Speculative chains: candidates integrated per minute against ``--concurrency 1``.

16 candidates, each check a sleep of about 1 s (a real process in a real
scratch worktree), failure rates 0, 0.1 and 0.3 (which candidates fail is
drawn once, with a fixed seed, so that every concurrency gets the same
queue), concurrency 1, 2, 4 and 8. Each figure is a ratio to concurrency 1 of
the same failure rate in the same run, and beside the ideal:
``N * T / c``, plus ``T`` for each failure when ``c > 1`` (the links behind a
failing head were tested on a base that held it, and are tested again).

Run: ``python benchmarks/bench_chain.py [--out results-chain.json] [--plot x.png]``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from mergegate.apply import CheckSpec, GitApplier, integrate_chain
from mergegate.apply.testing import TestRepo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine

CANDIDATES = 16
CHECK_SECONDS = 1.0
RATES = (0.0, 0.1, 0.3)
CONCURRENCY = (1, 2, 4, 8)
SEED = 20261126


def failing(rate: float, n: int = CANDIDATES) -> frozenset[int]:
    """Which candidates fail at ``rate``: ``round(rate * n)`` of them, drawn with a fixed seed."""
    return frozenset(random.Random(SEED).sample(range(n), round(rate * n)))


def one_run(root: Path, rate: float, concurrency: int) -> dict[str, float | int]:
    """Integrate a fresh queue of :data:`CANDIDATES`; return the measured figures."""
    repo = TestRepo.create(root / "repo")
    base = repo.commit("refs/heads/main", None, {"README": "bench\n"})
    store = SQLiteStore(root / "db.sqlite3")
    engine = Engine(store)
    fails = failing(rate)
    for i in range(CANDIDATES):
        edits = {f"f{i:02d}": f"{i}\n"}
        if i in fails:
            edits["FAIL"] = "x\n"
        sha = repo.commit(f"refs/heads/c{i:02d}", base, edits)
        engine.submit(CandidateKey(f"c{i:02d}", f"c{i:02d}", sha))
    check = CheckSpec(
        "sleep", ("/bin/sh", "-c", f"sleep {CHECK_SECONDS:g} && test ! -e FAIL"), timeout=60
    )
    with GitApplier(repo.path, checks=[check]) as applier:
        start = time.perf_counter()
        run = integrate_chain(engine, applier, owner="bench", concurrency=concurrency)
        elapsed = time.perf_counter() - start
    store.close()
    integrated = len(run.integrated)
    assert integrated == CANDIDATES - len(fails), (integrated, len(fails))
    ideal = CANDIDATES * CHECK_SECONDS / concurrency
    if concurrency > 1:
        ideal += len(fails) * CHECK_SECONDS
    return {
        "rate": rate,
        "concurrency": concurrency,
        "failures": len(fails),
        "integrated": integrated,
        "requeued": run.requeued,
        "seconds": round(elapsed, 3),
        "per_minute": round(integrated / elapsed * 60, 2),
        "ideal_seconds": round(ideal, 3),
    }


def measure() -> list[dict[str, float | int]]:
    """Every (rate, concurrency) figure, with its ratio to concurrency 1 and to the ideal."""
    rows = []
    for rate in RATES:
        serial = None
        for concurrency in CONCURRENCY:
            with tempfile.TemporaryDirectory(prefix="mergegate-bench-chain-") as tmp:
                row = one_run(Path(tmp), rate, concurrency)
            if serial is None:
                serial = row
            row["vs_serial"] = round(float(row["per_minute"]) / float(serial["per_minute"]), 2)
            row["of_ideal"] = round(float(row["ideal_seconds"]) / float(row["seconds"]), 2)
            rows.append(row)
            print(
                f"rate {rate:.1f} c={concurrency}: {row['seconds']:6.2f} s, "
                f"{row['per_minute']:6.1f}/min, {row['vs_serial']:.2f}x serial, "
                f"{row['of_ideal']:.2f} of ideal, {row['requeued']} requeued",
                file=sys.stderr,
            )
    return rows


def plot(rows: list[dict[str, float | int]], path: Path) -> None:
    """Throughput against concurrency, one line per failure rate, the ideal dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for rate in RATES:
        mine = [r for r in rows if r["rate"] == rate]
        xs = [r["concurrency"] for r in mine]
        (line,) = ax.plot(xs, [r["vs_serial"] for r in mine], marker="o", label=f"failure {rate}")
        ideal = [
            (float(r["integrated"]) / float(r["ideal_seconds"]))
            / (float(mine[0]["integrated"]) / float(mine[0]["ideal_seconds"]))
            for r in mine
        ]
        ax.plot(xs, ideal, "--", color=line.get_color(), alpha=0.6)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(CONCURRENCY), [str(c) for c in CONCURRENCY])
    ax.set_xlabel("--concurrency (links tested at once)")
    ax.set_ylabel("candidates per minute ÷ concurrency 1")
    ax.set_title(f"{CANDIDATES} candidates, checks of {CHECK_SECONDS:g} s (dashed: ideal)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    """Measure, print the table, write the JSON (and the plot)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results-chain.json"))
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    rows = measure()
    args.out.write_text(json.dumps({"rows": rows}, indent=2, sort_keys=True) + "\n")
    if args.plot is not None:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
