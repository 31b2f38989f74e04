"""The benchmark harness: every figure of docs/performance.md, in one process run.

Run it as a script, never with ``python -m`` from the repository root::

    .venv/bin/python benchmarks/run.py            # the documented run (a few minutes)
    .venv/bin/python benchmarks/run.py --quick    # a smoke run (seconds)

The repository's root folder is called ``statemachine``, which is also the
import name of python-statemachine, one of the baselines. Run as a script, the
root is not on ``sys.path``, and the harness checks that the peer it imported
is the installed package.

It prints a Markdown table of ratios and writes ``benchmarks/results.json``.
It never fails on a number; a figure that cannot run says why in its row.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _check_peer() -> None:
    try:
        import statemachine
    except ImportError:
        sys.exit(
            "run.py: python-statemachine, a baseline of figure 3, is not installed; "
            "use `tox -e bench`, or `pip install -e '.[dev]'` into your venv"
        )

    where = Path(statemachine.__file__ or "").resolve()
    if ROOT / "statemachine" in where.parents:
        sys.exit(
            f"run.py: `statemachine` was imported from {where}, this repository's folder, "
            "not python-statemachine; run `python benchmarks/run.py` as a script, "
            "not `python -m` from the repository root"
        )
    if "site-packages" not in where.parts:
        sys.exit(f"run.py: python-statemachine should come from site-packages, not {where}")


_check_peer()

import bench_core  # noqa: E402
import bench_history  # noqa: E402
import bench_machines  # noqa: E402
from measure import Row, row  # noqa: E402
from workload import Scale  # noqa: E402

# Figures 1 to 5, in order; figure 6 also returns the growth curve for the plot.
FIGURES = (
    bench_core.figure_persisted,
    bench_core.figure_batched,
    bench_machines.figure_decisions,
    bench_machines.figure_memory,
    bench_core.figure_blocked,
)

# Figures 7 to 12 live in their own modules, each exposing ``run() -> dict``.
EXTRA = (
    ("7", "bench_apply", "applying a clean and a conflicting candidate vs raw git"),
    ("8", "bench_postgres", "PostgreSQL persisted transitions vs raw psycopg"),
    ("9", "bench_run", "candidates per minute through `mergegate run` vs a raw git loop"),
    ("10", "bench_queue", "reading the queue (list, blocked, report, /api/queue) at 10^6 log rows"),
    ("11", "bench_buildbot", "checks on Buildbot: --concurrency 4 vs 1, overhead per build"),
    ("12", "bench_chain", "speculative chains at failure rate 0.1: --concurrency 4 vs 1"),
)


def _unavailable(figure: str, name: str, why: str) -> Row:
    return row(
        figure,
        name,
        value=None,
        unit="",
        baseline_name="",
        baseline=None,
        ratio=None,
        target="",
        met=None,
        note=f"not available: {why}",
    )


def _postgres_rows(result: dict[str, Any]) -> list[Row]:
    """Rows from bench_postgres' own result shape (medians per figure, per-round ratio)."""
    median = result["median"]
    name = "PostgreSQL persisted transitions/s, 1 worker process"
    fsync = (
        f"fsync cost this run: {result['fsync_us_per_commit']:.0f} us per commit (raw "
        f"synchronous_commit on {median['raw']:,.0f}/s vs off {median['raw_sync_off']:,.0f}/s)"
    )
    raw_ratio = result["ratio_to_raw_per_round_median"]
    equal_ratio = result["ratio_to_equal_work_per_round_median"]
    rows = [
        row(
            "8a",
            name,
            value=median["mg1"],
            unit="transitions/s",
            baseline_name="raw psycopg INSERT + commit, 1 connection",
            baseline=median["raw"],
            ratio=raw_ratio,
            target=">= 0.7",
            met=raw_ratio >= 0.7,
            note=fsync,
            key="fig8.raw_insert",
        ),
        row(
            "8e",
            name,
            value=median["mg1"],
            unit="transitions/s",
            baseline_name="mergegate's own statements for a move, by hand, 1 connection",
            baseline=median["equal"],
            ratio=equal_ratio,
            target="(reported; no target)",
            met=None,
            note=result["statements"],
            key="fig8.equal_work",
        ),
        row(
            "8f",
            "the fsync cost beside figure 8: raw commit at synchronous_commit on minus off",
            value=result["fsync_us_per_commit"],
            unit="us/commit",
            baseline_name="",
            baseline=None,
            ratio=None,
            target="(reported; tells a fast disk from a slow one)",
            met=None,
            key="fig8.fsync_us",
        ),
    ]
    if "mg4" in median:
        ratio = median["mg4"] / median["raw"]
        scaling = median["mg4"] / median["mg1"]
        rows.append(
            row(
                "8b",
                "PostgreSQL persisted transitions/s, 4 worker processes on one queue and one lease",
                value=median["mg4"],
                unit="transitions/s",
                baseline_name="raw psycopg INSERT + commit, 1 connection",
                baseline=median["raw"],
                ratio=ratio,
                target=">= 0.7",
                met=ratio >= 0.7,
                note=f"4 workers / 1 worker = {scaling:.2f}; "
                f"{result['lease_waits_4_workers']} start_apply retries on a held lease",
                key="fig8.four_workers_one_lease",
            )
        )
    if "mg4own" in median:
        scaling = median["mg4own"] / median["mg1"]
        rows.append(
            row(
                "8c",
                "PostgreSQL persisted transitions/s, 4 worker processes on one queue, "
                "each with its own lease (distinct candidates, nothing shared to wait for)",
                value=median["mg4own"],
                unit="transitions/s",
                baseline_name="mergegate, 1 worker process",
                baseline=median["mg1"],
                ratio=scaling,
                target="> 1.5",
                met=scaling > 1.5,
                key="fig8.four_workers_own_leases",
            )
        )
    if "raw_autocommit" in median:
        ratio = median["mg1"] / median["raw_autocommit"]
        rows.append(
            row(
                "8r",
                name,
                value=median["mg1"],
                unit="transitions/s",
                baseline_name="raw psycopg INSERT in autocommit (one round trip), 1 connection",
                baseline=median["raw_autocommit"],
                ratio=ratio,
                target=">= 0.7",
                met=ratio >= 0.7,
                key="fig8.raw_autocommit",
            )
        )
    return rows


def _normalize(figure: str, name: str, result: Any) -> list[Row]:
    """Accept ``{"rows": [...]}``, one row, or a dict of rows, and fill the missing keys."""
    if isinstance(result, dict) and {"median", "ratio_to_raw_per_round_median"} <= result.keys():
        return _postgres_rows(result)
    if isinstance(result, dict) and isinstance(result.get("rows"), list):
        found = result["rows"]
    elif isinstance(result, dict) and "ratio" in result:
        found = [result]
    elif isinstance(result, dict):
        found = [
            {"name": f"{name}: {k}", **v}
            for k, v in result.items()
            if isinstance(v, dict) and "ratio" in v
        ]
    elif isinstance(result, list):
        found = [r for r in result if isinstance(r, dict)]
    else:
        found = []
    if not found:
        return [_unavailable(figure, name, f"run() returned no rows ({type(result).__name__})")]
    rows = []
    for i, r in enumerate(found):
        filled = {**row(figure, name, value=None, unit="", baseline_name="", baseline=None,
                        ratio=None, target="", met=None), **r}  # fmt: skip
        if len(found) > 1 and filled["figure"] == figure:
            filled["figure"] = f"{figure}{'abcdefgh'[i]}"
        rows.append(filled)
    return rows


def _extra(figure: str, module: str, name: str, quick: bool) -> list[Row]:
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        return [_unavailable(figure, name, f"benchmarks/{module}.py does not import ({err})")]
    run = getattr(mod, "run", None)
    if run is None:
        return [_unavailable(figure, name, f"benchmarks/{module}.py has no run()")]
    try:
        params = inspect.signature(run).parameters
        if "quick" in params:
            result = run(quick=quick)
        elif quick and {"rounds", "cycles"} <= params.keys():
            result = run(rounds=1, cycles=3)
        else:
            result = run()
    except Exception as err:  # a figure reports why it could not run; it never stops the rest
        return [_unavailable(figure, name, f"{type(err).__name__}: {err}")]
    return _normalize(figure, name, result)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if value < 10 else f"{value:.1f}"
    return str(value)


def _ratio(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    head = "| fig | measure | mergegate | baseline | baseline value | ratio | target | met |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ours = f"{_fmt(r['value'])} {r['unit']}".strip() if r["value"] is not None else "-"
        base = f"{_fmt(r['baseline'])} {r['unit']}".strip() if r["baseline"] is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[r["met"]]
        name = r["name"] + (f" ({r['note']})" if r.get("note") else "")
        ratio = _ratio(r["ratio"])
        lines.append(
            f"| {r['figure']} | {name} | {ours} | {r['baseline_name'] or '-'} | {base} "
            f"| {ratio} | {r['target'] or '-'} | {met} |"
        )
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine(work: Path) -> dict[str, Any]:
    """What the figures ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        df = (
            subprocess.run(
                ["df", "-T", str(work)], capture_output=True, text=True, check=True, timeout=10
            )
            .stdout.splitlines()[-1]
            .split()
        )
        disk = f"{df[0]} ({df[1]})"
    except (OSError, subprocess.SubprocessError, IndexError):
        disk = "unknown"
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "scratch_filesystem": disk,
        "transitions": _version("transitions"),
        "python-statemachine": _version("python-statemachine"),
    }


def _unwind(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run every figure, print the table, write the JSON; always exit 0 once it ran."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run, small sizes")
    parser.add_argument("--out", type=Path, default=HERE / "results.json", help="JSON path")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        help="PNG of figure 6 (default docs/performance-history-queries.png; none with --quick)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--only", default=None, help="comma-separated figure numbers, e.g. 1,5")
    args = parser.parse_args(argv)
    # Stopped by SIGTERM (a test's guard, a CI's cancel), unwind instead of dying: the
    # figures' `finally` blocks stop the servers they started (a Buildbot master and
    # workers, git daemon), which a plain death left running.
    signal.signal(signal.SIGTERM, _unwind)

    scale = Scale.quick() if args.quick else Scale.full()
    plot = args.plot or (None if args.quick else ROOT / "docs" / "performance-history-queries.png")
    only = None if args.only is None else set(args.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="mergegate-bench-", dir=args.dir))
    started = time.perf_counter()
    rows: list[Row] = []
    growth: dict[str, dict[int, float]] = {}
    try:
        for number, figure in enumerate(FIGURES, 1):
            if only is None or str(number) in only:
                print(f"figure {number} ...", file=sys.stderr, flush=True)
                rows.extend(figure(work, scale))
        if only is None or "6" in only:
            print("figure 6 ...", file=sys.stderr, flush=True)
            history, growth = bench_history.figure_history(work, scale)
            rows.extend(history)
        for figure_id, module, name in EXTRA:
            if only is None or figure_id in only:
                print(f"figure {figure_id} ...", file=sys.stderr, flush=True)
                rows.extend(_extra(figure_id, module, name, args.quick))
        info = machine(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started

    if plot is not None and growth:
        from plot import plot_growth

        plot_growth(growth, plot)
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "runs_per_figure": scale.runs,
        "seconds": round(elapsed, 1),
        "machine": info,
        # Stable names for the ratios (figure ids may be renumbered; these keys will not).
        "ratios": {r["key"]: r["ratio"] for r in rows if r.get("key") and r["ratio"] is not None},
        "fsync_us_per_commit": {
            r["key"].split(".")[0]: r["value"]
            for r in rows
            if r.get("key", "").endswith(".fsync_us") and r["value"] is not None
        },
        "figures": rows,
        "history_growth": {q: {str(k): v for k, v in t.items()} for q, t in growth.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(
        f"\n{'quick' if args.quick else 'full'} run, {elapsed:.0f} s; "
        f"each figure the median of {scale.runs} runs after a warm-up; JSON: {args.out}"
        + (f"; plot: {plot}" if plot is not None and growth else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
