"""Figure 7: GitApplier against the raw git commands it runs, in the same process run.

A clean candidate with no checks is applied by :class:`mergegate.apply.GitApplier`
and, for the baseline, by the three plumbing commands alone (``merge-tree``,
``commit-tree``, ``update-ref``) run as subprocesses. A conflicting candidate
is measured the same way, against ``merge-tree`` alone. The target is at most
1.5 times the raw cost. Each side is warmed up, then both alternate for several
runs; a figure is the median, and its ratio the median of the per-run ratios.

    .venv/bin/python benchmarks/bench_apply.py [--quick]

``run()`` returns ``{"rows": [...]}`` for ``benchmarks/run.py``. It never fails
on a number.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mergegate.apply import GitApplier
from mergegate.apply.testing import TestRepo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import Blocked, CandidateKey, Engine, Integrated, State

TARGET = 1.5
_ENV = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {
    "LC_ALL": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def _noop() -> None:
    """A heartbeat that never loses the lease."""


def _build(root: Path) -> tuple[TestRepo, str, CandidateKey, CandidateKey]:
    """A bare repository with 200 files on main, a clean and a conflicting candidate."""
    repo = TestRepo.create(root / "repo.git")
    files: dict[str, str | None] = {f"src/m{i:03}.txt": f"line {i}\n" * 20 for i in range(200)}
    base = repo.commit("refs/heads/main", None, files)
    base = repo.commit("refs/heads/main", base, {"src/m000.txt": "main edit\n"})
    fork = repo.git("rev-parse", "refs/heads/main~1")
    clean = repo.commit("refs/heads/clean", fork, {"src/m100.txt": "clean edit\n"})
    conflict = repo.commit("refs/heads/conflict", fork, {"src/m000.txt": "other edit\n"})
    return (
        repo,
        base,
        CandidateKey("clean", "clean", clean),
        CandidateKey("conflict", "conflict", conflict),
    )


def _paired(ours: Callable[[], float], base: Callable[[], float], runs: int) -> tuple[float, ...]:
    ours()
    base()
    mine: list[float] = []
    theirs: list[float] = []
    for i in range(runs):
        first, second = (base, ours) if i % 2 else (ours, base)
        a, b = first(), second()
        m, t = (b, a) if i % 2 else (a, b)
        mine.append(m)
        theirs.append(t)
    ratios = [m / t for m, t in zip(mine, theirs, strict=True) if t > 0]
    return statistics.median(mine), statistics.median(theirs), statistics.median(ratios)


def _row(
    name: str, ours: float, raw: float, ratio: float, baseline: str, note: str, key: str
) -> dict[str, Any]:
    return {
        "figure": "7",
        "name": name,
        "value": ours * 1e3,
        "unit": "ms/apply",
        "baseline_name": baseline,
        "baseline": raw * 1e3,
        "ratio": ratio,
        "target": f"<= {TARGET}x",
        "met": ratio <= TARGET,
        "note": note,
        "key": key,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Measure both figures; return ``{"rows": [...]}`` in benchmarks/run.py's row format."""
    per_run, runs = (5, 3) if quick else (30, 9)
    git = shutil.which("git") or "git"
    with tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        repo, base, clean, conflict = _build(Path(tmp))
        applier = GitApplier(repo.path)
        store = SQLiteStore(Path(tmp) / "mergegate.sqlite3")
        try:
            return _measure(repo, base, clean, conflict, applier, Engine(store), git, per_run, runs)
        finally:
            applier.close()
            store.close()


def _measure(
    repo: TestRepo,
    base: str,
    clean: CandidateKey,
    conflict: CandidateKey,
    applier: GitApplier,
    engine: Engine,
    git: str,
    per_run: int,
    runs: int,
) -> dict[str, Any]:
    def raw(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [git, *args], cwd=repo.path, env=_ENV, input=stdin, capture_output=True, check=False
        )

    def reset() -> None:
        raw("update-ref", "refs/heads/main", base)

    def applier_clean() -> float:
        total = 0.0
        for _ in range(per_run):
            start = time.perf_counter()
            result = applier.apply(clean, _noop)
            total += time.perf_counter() - start
            assert isinstance(result, Integrated), result
            reset()
        return total / per_run

    def raw_clean() -> float:
        total = 0.0
        for _ in range(per_run):
            start = time.perf_counter()
            tree = raw("merge-tree", "--write-tree", base, clean.sha).stdout.split()[0]
            msg = b"mergegate: integrate clean\n"
            new = raw(
                "commit-tree", "-p", base, "-p", clean.sha, "-F", "-", tree.decode(), stdin=msg
            ).stdout.strip()
            done = raw("update-ref", "refs/heads/main", new.decode(), base)
            total += time.perf_counter() - start
            assert done.returncode == 0, done.stderr
            reset()
        return total / per_run

    def applier_conflict() -> float:
        start = time.perf_counter()
        for _ in range(per_run):
            result = applier.apply(conflict, _noop)
            assert isinstance(result, Blocked), result
        return (time.perf_counter() - start) / per_run

    def raw_conflict() -> float:
        start = time.perf_counter()
        for _ in range(per_run):
            out = raw("merge-tree", "--write-tree", "--name-only", base, conflict.sha)
            assert out.returncode == 1, out.stderr
        return (time.perf_counter() - start) / per_run

    serial = iter(range(10**9))

    def engine_apply(key: CandidateKey, want: State) -> float:
        """Submit fresh candidates (untimed), then time ``apply_next``: claim, apply, record."""
        total = 0.0
        for _ in range(per_run):
            slug = f"{key.slug}-{next(serial)}"
            engine.submit(CandidateKey(slug, key.branch, key.sha))
            start = time.perf_counter()
            outcome = engine.apply_next(applier, owner="bench")
            total += time.perf_counter() - start
            assert outcome is not None, outcome
            assert outcome.candidate.state is want, outcome
            reset()
        return total / per_run

    clean_figs = _paired(applier_clean, raw_clean, runs)
    conflict_figs = _paired(applier_conflict, raw_conflict, runs)
    e2e_clean = _paired(lambda: engine_apply(clean, State.INTEGRATED), raw_clean, runs)
    e2e_conflict = _paired(lambda: engine_apply(conflict, State.BLOCKED), raw_conflict, runs)
    return {
        "rows": [
            _row(
                "end to end: engine.apply_next on a clean candidate (SQLite, FULL)",
                *e2e_clean,
                baseline="git merge-tree + commit-tree + update-ref",
                note="claim + start_apply commit, the applier, the integrate commit",
                key="fig7.end_to_end_clean",
            ),
            _row(
                "end to end: engine.apply_next on a conflicting candidate (SQLite, FULL)",
                *e2e_conflict,
                baseline="git merge-tree",
                note="claim + start_apply commit, the applier, the block commit (no follow-ups)",
                key="fig7.end_to_end_conflict",
            ),
            _row(
                "apply a clean candidate, no checks",
                *clean_figs,
                baseline="git merge-tree + commit-tree + update-ref",
                note="the applier alone; ours adds the precondition lookup (running cat-file)",
                key="fig7.applier_clean",
            ),
            _row(
                "apply a conflicting candidate",
                *conflict_figs,
                baseline="git merge-tree",
                note="the applier alone; ours adds the precondition lookup (running cat-file)",
                key="fig7.applier_conflict",
            ),
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    rows = run(quick=parser.parse_args().quick)["rows"]
    print(f"{'figure':<72} {'ours ms':>8} {'raw ms':>8} {'ratio':>6} {'target':>7}  met")
    for r in rows:
        print(
            f"{r['name']:<72} {r['value']:>8.2f} {r['baseline']:>8.2f} {r['ratio']:>6.2f} "
            f"{r['target']:>7}  {'yes' if r['met'] else 'no'}"
        )
        print(f"  baseline: {r['baseline_name']}; {r['note']}")
    version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    print(f"python {sys.version.split()[0]}, {version.stdout.strip()}")


if __name__ == "__main__":
    main()
