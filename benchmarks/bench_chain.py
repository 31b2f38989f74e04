"""Speculative chains: candidates integrated per minute against ``--concurrency 1``.

16 candidates, each check a sleep of about 1 s (a real process in a real
scratch worktree), failure rates 0, 0.1 and 0.3 (which candidates fail is
drawn once, with a fixed seed, so that every concurrency gets the same
queue), concurrency 1, 2, 4 and 8. Each figure is a ratio to concurrency 1 of
the same failure rate in the same run, and beside the ideal:
``N * T / c``, plus ``T`` for each failure when ``c > 1`` (the links behind a
failing head were tested on a base that held it, and are tested again).

With ``--through cli`` each figure is ``mergegate run --once --concurrency N``
as a real subprocess on the default SQLite store (the queue filled through the
Python API first; timed from launch to exit, Python's start-up included), as an
operator runs it; otherwise ``integrate_chain`` is called in this process.
``--rates`` and ``--concurrency`` pick a part of the grid (concurrency 1 is
always measured: it is what the others are divided by).

Where the failures sit matters to a chain: a failing head throws away the
links behind it, and there are none behind the last candidate. With
``--positions start middle end`` the ``round(rate * 16)`` failing candidates
are consecutive, at the front of the queue, in its middle or at its end
(instead of the seeded draw, ``random``), each position with its own serial
run; the summary gives each position's ratio to serial and their mean, the
figure issue 23 sets a target for (>= 3.3x at rate 0.1, concurrency 4).

Run: ``python benchmarks/bench_chain.py [--through cli] [--rates 0.1] [--concurrency 1 4]
[--positions start middle end] [--out results-chain.json] [--plot x.png]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
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
POSITIONS = ("random", "start", "middle", "end")
#: The target of issue 23: concurrency 4 at rate 0.1, mean over start, middle and end.
TARGET = 3.3


def failing(rate: float, n: int = CANDIDATES, position: str = "random") -> frozenset[int]:
    """Which candidates fail at ``rate``: ``round(rate * n)`` of them.

    ``random``: drawn with a fixed seed; ``start``, ``middle``, ``end``: that
    many consecutive candidates at the front, in the middle, at the end.
    """
    k = round(rate * n)
    if position == "random":
        return frozenset(random.Random(SEED).sample(range(n), k))
    first = {"start": 0, "middle": (n - k) // 2, "end": n - k}[position]
    return frozenset(range(first, first + k))


_CHECK_ARGV = ("/bin/sh", "-c", f"sleep {CHECK_SECONDS:g} && test ! -e FAIL")
_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))} | {
    "LC_ALL": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "MERGEGATE_ACTOR": "bench",
}


def _queue(repo: TestRepo, engine: Engine, fails: frozenset[int]) -> None:
    base = repo.commit("refs/heads/main", None, {"README": "bench\n"})
    for i in range(CANDIDATES):
        edits = {f"f{i:02d}": f"{i}\n"}
        if i in fails:
            edits["FAIL"] = "x\n"
        sha = repo.commit(f"refs/heads/c{i:02d}", base, edits)
        engine.submit(CandidateKey(f"c{i:02d}", f"c{i:02d}", sha))


def _in_process(root: Path, concurrency: int, fails: frozenset[int]) -> tuple[float, int, int]:
    """``integrate_chain`` called here: seconds, integrated, requeued."""
    repo = TestRepo.create(root / "repo")
    store = SQLiteStore(root / "db.sqlite3")
    engine = Engine(store)
    _queue(repo, engine, fails)
    check = CheckSpec("sleep", _CHECK_ARGV, timeout=60)
    with GitApplier(repo.path, checks=[check]) as applier:
        start = time.perf_counter()
        run = integrate_chain(engine, applier, owner="bench", concurrency=concurrency)
        elapsed = time.perf_counter() - start
    store.close()
    return elapsed, len(run.integrated), run.requeued


def _mergegate(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(repo), *args],
        env=_ENV,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def _through_cli(root: Path, concurrency: int, fails: frozenset[int]) -> tuple[float, int, int]:
    """``mergegate run --once --concurrency N`` as a process: seconds, integrated, requeued."""
    repo = TestRepo.create(root / "repo.git")
    # Closed before the run starts, so the process finds the queue as an operator's would.
    init = _mergegate(repo.path, "init")
    if init.returncode != 0:
        raise RuntimeError(f"mergegate init exited {init.returncode}: {init.stderr.strip()}")
    argv = ", ".join(json.dumps(a) for a in _CHECK_ARGV)
    (repo.path / "mergegate.toml").write_text(
        f'[[checks]]\nname = "sleep"\nargv = [{argv}]\ntimeout = 60\n'
    )
    store = SQLiteStore(repo.path / "mergegate" / "mergegate.sqlite3")
    _queue(repo, Engine(store), fails)
    store.close()
    start = time.perf_counter()
    done = _mergegate(repo.path, "--json", "run", "--once", "--concurrency", str(concurrency))
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 3):
        log = repo.path / "mergegate" / "mergegate.log"
        said = log.read_text()[-3000:] if log.exists() else ""
        raise RuntimeError(f"mergegate run exited {done.returncode}: {done.stderr[-800:]}\n{said}")
    result = json.loads(done.stdout)["result"]
    return elapsed, int(result["integrated"]), done.stderr.count(": requeued")


def one_run(
    root: Path, rate: float, concurrency: int, through: str = "api", position: str = "random"
) -> dict[str, float | int | str]:
    """Integrate a fresh queue of :data:`CANDIDATES`; return the measured figures."""
    fails = failing(rate, position=position)
    runner = _through_cli if through == "cli" else _in_process
    elapsed, integrated, requeued = runner(root, concurrency, fails)
    assert integrated == CANDIDATES - len(fails), (integrated, len(fails))
    ideal = CANDIDATES * CHECK_SECONDS / concurrency
    if concurrency > 1:
        ideal += len(fails) * CHECK_SECONDS
    return {
        "rate": rate,
        "position": position,
        "concurrency": concurrency,
        "failures": len(fails),
        "integrated": integrated,
        "requeued": requeued,
        "seconds": round(elapsed, 3),
        "per_minute": round(integrated / elapsed * 60, 2),
        "ideal_seconds": round(ideal, 3),
    }


Row = dict[str, float | int | str]


def measure(
    rates: tuple[float, ...] = RATES,
    concurrencies: tuple[int, ...] = CONCURRENCY,
    through: str = "api",
    positions: tuple[str, ...] = ("random",),
) -> list[Row]:
    """Every (rate, position, concurrency) figure, with its ratio to concurrency 1 and the ideal."""
    rows = []
    levels = (1, *sorted(set(concurrencies) - {1}))
    for rate in rates:
        for position in positions if rate > 0 else ("random",):
            rows.extend(_levels(rate, position, levels, through))
    return rows


def _levels(rate: float, position: str, levels: tuple[int, ...], through: str) -> list[Row]:
    """One queue (rate, position) at each concurrency, serial first: the ratios' divisor."""
    rows: list[Row] = []
    serial = None
    for concurrency in levels:
        with tempfile.TemporaryDirectory(prefix="mergegate-bench-chain-") as tmp:
            row = one_run(Path(tmp), rate, concurrency, through, position)
        if serial is None:
            serial = row
        row["vs_serial"] = round(float(row["per_minute"]) / float(serial["per_minute"]), 2)
        row["of_ideal"] = round(float(row["ideal_seconds"]) / float(row["seconds"]), 2)
        rows.append(row)
        print(
            f"rate {rate:.1f} {position:>6} c={concurrency}: {row['seconds']:6.2f} s, "
            f"{row['per_minute']:6.1f}/min, {row['vs_serial']:.2f}x serial, "
            f"{row['of_ideal']:.2f} of ideal, {row['requeued']} requeued",
            file=sys.stderr,
        )
    return rows


def position_means(rows: list[Row]) -> list[str]:
    """Per rate and concurrency above 1: the mean ratio to serial over start, middle and end."""
    lines = []
    keys = sorted({(r["rate"], r["concurrency"]) for r in rows if r["position"] != "random"})
    for rate, concurrency in keys:
        if concurrency == 1:
            continue
        mine = {
            str(r["position"]): float(r["vs_serial"])
            for r in rows
            if (r["rate"], r["concurrency"]) == (rate, concurrency) and r["position"] != "random"
        }
        mean = sum(mine.values()) / len(mine)
        each = ", ".join(f"{p} {v:.2f}x" for p, v in mine.items())
        line = f"rate {rate} c={concurrency}: mean {mean:.2f}x serial over {each}"
        if (rate, concurrency) == (0.1, 4):
            line += f" (target >= {TARGET}x: {'met' if mean >= TARGET else 'not met'})"
        lines.append(line)
    return lines


def _windows(fails: frozenset[int], concurrency: int, n: int = CANDIDATES) -> int:
    """How many check times a chain takes with no overhead at all: ``concurrency`` links
    start together; a failing link ends their window, and the links behind it start again."""
    pos = windows = 0
    while pos < n:
        window = range(pos, min(pos + concurrency, n))
        windows += 1
        bad = next((i for i in window if i in fails), None)
        pos = window[-1] + 1 if bad is None else bad + 1
    return windows


def run(quick: bool = False) -> dict[str, object]:
    """Figure 12 of the harness: ``run --once --concurrency 4`` against 1 at rate 0.1,
    through the command, the mean over the failure positions (``--quick``: the middle only).

    Its note gives each position's ratio and the ideal's (no overhead at all): two
    failures side by side cost a concurrency-4 chain two check times of its own.
    """
    positions = ("middle",) if quick else ("start", "middle", "end")
    rows = measure(rates=(0.1,), concurrencies=(1, 4), through="cli", positions=positions)
    fours = [r for r in rows if r["concurrency"] == 4]
    serials = [r for r in rows if r["concurrency"] == 1]
    mean = sum(float(r["vs_serial"]) for r in fours) / len(fours)
    fails = [failing(0.1, position=str(r["position"])) for r in fours]
    ideal = sum(_windows(f, 1) / _windows(f, 4) for f in fails) / len(fails)
    each = ", ".join(f"{r['position']} {float(r['vs_serial']):.2f}x" for r in fours)
    serial_rate = sum(float(r["per_minute"]) for r in serials) / len(serials)
    return {
        "rows": [
            {
                "figure": "12",
                "name": "speculative chain: run --once --concurrency 4, failure rate 0.1 "
                f"({CANDIDATES} candidates, {fours[0]['failures']} failing "
                f"side by side, {CHECK_SECONDS:g} s checks; mean over the failure positions)",
                "value": sum(float(r["per_minute"]) for r in fours) / len(fours),
                "unit": "candidates/min",
                "baseline_name": "--concurrency 1, the same queues",
                "baseline": serial_rate,
                "ratio": mean,
                "target": f">= {TARGET}x",
                "met": mean >= TARGET,
                "note": f"{each}; with no overhead at all the mean would be {ideal:.2f}x",
                "key": "fig12.chain_positions",
            }
        ]
    }


def plot(rows: list[Row], path: Path) -> None:
    """Throughput against concurrency, one line per failure rate, the ideal dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for rate in RATES:
        mine = [r for r in rows if r["rate"] == rate and r["position"] == "random"]
        if not mine:
            continue
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
    parser.add_argument("--through", choices=("api", "cli"), default="api")
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    parser.add_argument("--positions", nargs="+", choices=POSITIONS, default=["random"])
    args = parser.parse_args()
    rows = measure(tuple(args.rates), tuple(args.concurrency), args.through, tuple(args.positions))
    doc = {"through": args.through, "rows": rows}
    args.out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    if args.plot is not None:
        plot(rows, args.plot)
    print(table(rows, args.through))
    for line in position_means(rows):
        print(line)


def table(rows: list[Row], through: str) -> str:
    """The figures as a Markdown table, as docs/performance.md quotes it."""
    how = "`mergegate run --once --concurrency N`" if through == "cli" else "`integrate_chain`"
    lines = [
        f"Measured through {how}: {CANDIDATES} candidates, checks of {CHECK_SECONDS:g} s.",
        "",
        "| failure rate | failing | c | failures | seconds | per minute | vs c=1 | ideal s "
        "| of ideal | requeued |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['rate']} | {r['position']} | {r['concurrency']} | {r['failures']} "
            f"| {r['seconds']:.2f} "
            f"| {r['per_minute']:.1f} | {r['vs_serial']:.2f} | {r['ideal_seconds']:.1f} "
            f"| {r['of_ideal']:.2f} | {r['requeued']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
