"""The benchmark harness runs end to end and reports every figure as a ratio."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = (
    "1", "1e", "1t", "1s", "1r", "1'", "1e'", "2", "2b", "3a", "3b", "3c",
    "4a", "4b", "4c", "4d", "5a", "5b", "6a", "6b", "6c", "6d", "6e",
)  # fmt: skip
# The stable keys of results.json's "ratios": each equal-work baseline beside its raw one.
FIG1_KEYS = (
    "fig1.raw_insert",
    "fig1.equal_work",
    "fig1.transitions_log",
    "fig1.eventsourcing_app",
    "fig1.eventsourcing_recorder",
    "fig1.raw_insert_sync_off",
    "fig1.equal_work_sync_off",
)
FIG8_KEYS = ("fig8.raw_insert", "fig8.equal_work", "fig8.four_workers_one_lease")


def _bench_extra_missing() -> bool:
    # By distribution name: its import name, `statemachine`, is also a folder of this repo.
    try:
        metadata.version("python-statemachine")
        metadata.version("eventsourcing")
    except metadata.PackageNotFoundError:
        return True
    return False


def _quick(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "results.json"
    argv = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)]
    proc = subprocess.Popen(
        [*argv, *extra],
        cwd=tmp_path,
        env=None if env is None else {**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        # Stopped, not killed: run.py unwinds on SIGTERM, so the figures' `finally`
        # blocks stop the servers they started (a Buildbot master and workers, git
        # daemon), which a SIGKILL of run.py left running after a timed-out CI run.
        # (Not SIGINT: a runner started in the background has it ignored.)
        proc.terminate()
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        pytest.fail(f"run.py --quick {' '.join(extra)} ran over 300 s; it said:\n{stderr}")
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr
    return done, json.loads(out.read_text())


# About 3 s: figure 1 alone, the one whose baselines matter most.
@pytest.mark.skipif(
    _bench_extra_missing(), reason="the dev extra (python-statemachine, eventsourcing) is missing"
)
def test_figure_1_reports_raw_and_equal_work_ratios_with_the_fsync_cost(tmp_path: Path) -> None:
    """`run.py --quick --only 1` writes figure "1" with its ratio, the fig1 keys, the fsync cost."""
    _, result = _quick(tmp_path, "--only", "1")
    rows = {r["figure"]: r for r in result["figures"]}
    assert rows["1"]["key"] == "fig1.raw_insert"
    assert isinstance(rows["1"]["ratio"], float)
    assert rows["1"]["ratio"] > 0
    for key in FIG1_KEYS:
        assert result["ratios"][key] > 0, key
    # A difference of two measured rates: on a disk whose fsync is nearly free it sits
    # within noise of zero and may come out negative, so only its presence is checked.
    assert math.isfinite(result["fsync_us_per_commit"]["fig1"])
    # The equal-work baseline was re-checked against a trace of the store, not assumed.
    assert "checked against a trace of the store" in rows["1e"]["note"], rows["1e"]["note"]


# 10 to 40 s on two shared cores, most of it figures 7 and 8 (git and PostgreSQL).
# The figures in groups of about a minute of work each at load 3: the 300 s
# guard is against a hang of one group, and the whole quick run (about 200 s
# at load 3) ran out of it beside other work. Together they are every figure.
def _number(figure: str) -> str:
    """The figure's number without its row letter: "1e'" is figure 1, "10f" figure 10."""
    found = re.match(r"\d+", figure)
    assert found is not None, figure
    return found.group()


GROUPS = {"core": ("1", "2", "3", "4", "5", "6", "7"), "runs": ("8", "9", "10"), "ci": ("11", "12")}


@pytest.mark.slow
@pytest.mark.skipif(
    _bench_extra_missing(), reason="the dev extra (python-statemachine, eventsourcing) is missing"
)
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_quick_run_reports_every_figure_with_a_numeric_ratio(tmp_path: Path, group: str) -> None:
    """`run.py --quick --only <group>` exits 0, prints the table and writes each figure's ratio."""
    numbers = GROUPS[group]
    done, result = _quick(tmp_path, "--only", ",".join(numbers))
    assert "| fig | measure |" in done.stdout
    rows = {r["figure"]: r for r in result["figures"]}
    for figure in CORE:
        if _number(figure) in numbers:
            assert isinstance(rows[figure]["ratio"], int | float), rows[figure]
            assert rows[figure]["ratio"] > 0
    if "1" in numbers:
        for key in FIG1_KEYS:
            assert result["ratios"][key] > 0, key
    # Figure 8 needs the server; when it ran, its raw and equal-work ratios are both there.
    if any(r["figure"] == "8a" for r in result["figures"]):
        for key in FIG8_KEYS:
            assert result["ratios"][key] > 0, key
    # Figures 7 to 12 come from other modules and may be unavailable, but never missing.
    for number in (n for n in numbers if int(n) >= 7):
        extra = [r for f, r in rows.items() if _number(f) == number]
        assert extra, f"figure {number} has no row"
        for r in extra:
            if r.get("key", "").endswith(".fsync_us"):  # a cost beside the figure, not a ratio
                # on-minus-off of two noisy rates; near zero (either sign) on a fast disk
                assert isinstance(r["value"], float), r
                assert math.isfinite(r["value"]), r
                continue
            value = r["ratio"]
            assert isinstance(value, int | float) or r["note"].startswith("not available"), r


def test_the_groups_hold_every_figure() -> None:
    """The quick run's groups name each figure of run.py exactly once."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import run as harness  # benchmarks/run.py, the harness itself
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    numbered = [str(n) for n in range(1, len(harness.FIGURES) + 1)] + ["6"]
    figures = sorted(set(numbered) | {figure_id for figure_id, _, _ in harness.EXTRA}, key=int)
    grouped = sorted((n for g in GROUPS.values() for n in g), key=int)
    assert grouped == figures


def _benchmarks_importable() -> bool:
    try:
        metadata.version("transitions")  # benchmarks/workload.py builds the bare machine
    except metadata.PackageNotFoundError:
        return False
    return True


# About 2 s: no timing, the fixture alone.
@pytest.mark.skipif(not _benchmarks_importable(), reason="transitions (a peer) is missing")
def test_figure_10_store_is_one_mergegate_reads_and_verifies(tmp_path: Path) -> None:
    """The queue figure's bulk-inserted store replays clean and holds the queue it claims."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_queue
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    from mergegate.followups import Wiring, build_engine
    from mergegate.persistence import SQLiteStore

    end = datetime.now(UTC)
    held = bench_queue.build(tmp_path / "s.sqlite3", 1_000, end)
    assert held["transitions"] == 1_000, held  # exactly: the figure names its sizes
    store = SQLiteStore(tmp_path / "s.sqlite3")
    try:
        # Every candidate's log replays to its stored state: the rows are consistent.
        assert build_engine(store, Wiring(tmp_path / "todos")).verify() == []
        active = {c.key.slug: c.state.value for c in store.active_candidates()}
        assert active == {
            "queue-applying": "applying",
            **{f"queue-pending-{n}": "pending" for n in range(bench_queue.QUEUED)},
            **{f"queue-blocked-{n}": "blocked" for n in range(bench_queue.BLOCKED)},
        }
        # The log ends at ``end``, an entry every STEP seconds: `report --since 12h` reads
        # all of a young store, and the same 7,200 entries of any older one.
        assert len(store.log_since(end - timedelta(seconds=bench_queue.STEP * 999))) == 1_000
        assert len(store.log_since(end - timedelta(seconds=bench_queue.STEP * 99))) == 100
    finally:
        store.close()


# 15 to 60 s on two shared cores (thirty-odd process starts and two servers), so slow.
@pytest.mark.slow
@pytest.mark.skipif(
    _bench_extra_missing(), reason="the dev extra (python-statemachine, eventsourcing) is missing"
)
def test_figure_10_reports_each_read_with_its_ratio_and_memory(tmp_path: Path) -> None:
    """`run.py --quick --only 10`: a row per read with ratio and peak RSS; no server, one row."""
    _, result = _quick(
        tmp_path, "--only", "10", env={"MERGEGATE_TEST_PG": "postgresql://nobody@127.0.0.1:1/x"}
    )
    rows = {r["figure"]: r for r in result["figures"]}
    keys = ("list", "blocked", "report", "completion", "completion_all", "api_queue")
    for figure, key in zip("abcdef", keys, strict=True):
        r = rows[f"10{figure}"]
        assert r["key"] == f"fig10.{key}", r
        assert r["backend"] == "SQLite", r
        assert result["ratios"][r["key"]] > 0, r
        assert r["rss_mb"] > 0, r
        assert r["baseline_rss_mb"] > 0, r
        assert (r["log_rows"], r["baseline_log_rows"]) == (10_000, 1_000), r
        assert "WARNING" not in r["note"], r
        assert "load average" in r["note"], r
    assert rows["10g"]["note"].startswith("not available: no PostgreSQL server"), rows["10g"]
