"""Figure 9: candidates per minute through ``mergegate run`` against a raw git loop.

The same bare repository (200 files on main) and the same queue of clean
candidates, each changing a file of its own, are integrated twice from the
same start:

- the shell loop (the honest baseline): one bash script running, per
  candidate, ``merge-tree --write-tree``, ``commit-tree`` and ``update-ref``
  with the old value, main's sha kept in a shell variable (no Python, no
  records, no checks); bash's own start-up is paid once and counted;
- the raw loop: the same three commands plus a ``rev-parse`` of main, each
  started from Python with ``subprocess.run``, one after another;
- ``mergegate run --once`` as a real subprocess on the default SQLite store
  (timed from launch to exit: Python's start-up is paid once, and counted);
- the three above in rounds (three; one with ``--quick``), the order turned
  each round, each ratio the median of the rounds' own ratios;
- on PostgreSQL, one ``run --once``, and two side by side on one queue (timed
  from the launch of the first to the exit of the last), alternating, three
  rounds; medians.

The queue is filled through the Python API before the clock starts. The SQLite
run is measured against both loops; the target against the shell loop is at
least 0.75 times its rate (issue 23), against the raw Python loop 0.5; two
integrators must not be slower together than one.

    .venv/bin/python benchmarks/bench_run.py [--quick] [--pg URL]

``run()`` returns ``{"rows": [...]}`` for ``benchmarks/run.py``; it never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mergegate.apply.testing import TestRepo
from mergegate.persistence import open_store
from mergegate.statemachine import CandidateKey, Engine

TARGET = 0.5
#: ``run --once`` on SQLite against the shell loop (issue 23).
SHELL_TARGET = 0.75
DEFAULT_PG = os.environ.get("MERGEGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))} | {
    "LC_ALL": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def _build(root: Path, n: int) -> tuple[TestRepo, list[CandidateKey]]:
    repo = TestRepo.create(root / "repo.git")
    files: dict[str, str | None] = {f"src/m{i:03}.txt": f"line {i}\n" * 20 for i in range(200)}
    base = repo.commit("refs/heads/main", None, files)
    keys = []
    for i in range(n):
        sha = repo.commit(f"refs/heads/c{i}", base, {f"new/c{i}.txt": f"candidate {i}\n"})
        keys.append(CandidateKey(f"c{i}", f"c{i}", sha))
    return repo, keys


def _git(repo: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=_ENV, capture_output=True, text=True, input=stdin, check=True
    )
    return done.stdout.strip()


def _raw_loop(repo: Path, keys: list[CandidateKey]) -> float:
    """Seconds for merge-tree + commit-tree + update-ref per candidate, in queue order."""
    start = time.perf_counter()
    for key in keys:
        old = _git(repo, "rev-parse", "refs/heads/main")
        tree = _git(repo, "merge-tree", "--write-tree", old, key.sha).splitlines()[0]
        new = _git(repo, "commit-tree", "-p", old, "-p", key.sha, "-m", f"integrate {key}", tree)
        _git(repo, "update-ref", "refs/heads/main", new, old)
    return time.perf_counter() - start


_SHELL_LOOP = """\
set -eu
old=$(git rev-parse refs/heads/main)
while read -r sha name; do
  tree=$(git merge-tree --write-tree "$old" "$sha")
  new=$(git commit-tree -p "$old" -p "$sha" -m "integrate $name" "$tree")
  git update-ref refs/heads/main "$new" "$old"
  old=$new
done
"""


def _shell_loop(repo: Path, keys: list[CandidateKey]) -> float:
    """Seconds for one bash script doing merge-tree + commit-tree + update-ref per candidate."""
    queue = "".join(f"{key.sha} {key.slug}\n" for key in keys)
    start = time.perf_counter()
    subprocess.run(
        ["bash", "-c", _SHELL_LOOP], cwd=repo, env=_ENV, input=queue, text=True, check=True
    )
    took = time.perf_counter() - start
    count = _git(repo, "rev-list", "--count", "--merges", "refs/heads/main")
    assert int(count) == len(keys), count
    return took


def _durable_commits(where: Path, count: int) -> float:
    """Seconds for ``count`` bare insert+commit on SQLite as mergegate opens it (WAL, FULL).

    A candidate costs ``run`` two durable commits that the shell loop does not
    make (the claim before ``main`` moves, the outcome after); this prices them on
    the same disk in the same run, so the row can say what ratio is possible at all.
    """
    import sqlite3  # only this baseline needs it

    conn = sqlite3.connect(where / "commits.sqlite3", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        start = time.perf_counter()
        for i in range(count):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
            conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def _mergegate(repo: Path, *args: str) -> subprocess.Popen[str]:
    env = _ENV | {"MERGEGATE_ACTOR": "bench"}
    return subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(repo), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _fill(target: str, keys: list[CandidateKey]) -> None:
    store = open_store(target)
    try:
        engine = Engine(store)
        for key in keys:
            engine.submit(key)
    finally:
        store.close()


def _runs(repo: Path, db: tuple[str, ...], count: int) -> tuple[float, list[dict[str, Any]]]:
    """Launch ``count`` ``run --once`` together; seconds to the last exit, and their summaries."""
    start = time.perf_counter()
    procs = [_mergegate(repo, *db, "--json", "run", "--once") for _ in range(count)]
    docs = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"mergegate run exited {proc.returncode}: {err.strip()[:300]}")
        docs.append(json.loads(out)["result"])
    return time.perf_counter() - start, docs


def _sqlite_run(
    template: TestRepo, root: Path, name: str, keys: list[CandidateKey]
) -> tuple[float, float]:
    """One ``run --once`` over ``keys`` on a fresh copy: seconds launch to exit, and its own."""
    repo = _fresh(template, root, name)
    _mergegate(repo, "init").communicate()
    _fill(str(repo / "mergegate" / "mergegate.sqlite3"), keys)
    took, docs = _runs(repo, (), 1)
    assert docs[0]["integrated"] == len(keys), docs
    return took, float(docs[0]["seconds"])


def _paired(
    row: dict[str, Any], base: list[float], ours: list[float], target: float
) -> dict[str, Any]:
    """``row`` with its ratio the median of the rounds' own (times: baseline / ours)."""
    row["ratio"] = statistics.median(b / o for b, o in zip(base, ours, strict=True))
    row["met"] = row["ratio"] >= target
    return row


def _fresh(template: TestRepo, root: Path, name: str) -> Path:
    copy = root / name
    shutil.copytree(template.path, copy, symlinks=True)
    return copy


def _row(
    name: str,
    rate: float,
    raw: float,
    baseline: str,
    note: str,
    key: str,
    target: float = TARGET,
) -> dict[str, Any]:
    ratio = rate / raw
    return {
        "figure": "9",
        "name": name,
        "value": rate,
        "unit": "candidates/min",
        "baseline_name": baseline,
        "baseline": raw,
        "ratio": ratio,
        "target": f">= {target}x",
        "met": ratio >= target,
        "note": note,
        "key": key,
    }


def _pg_schema_ok(url: str) -> bool:
    found = _pg_schema(url)
    if found is None:
        return False
    _drop(url, found[0])
    return True


def _pg_round(
    template: TestRepo, root: Path, name: str, pg: str, keys: list[CandidateKey], count: int
) -> tuple[float, list[dict[str, Any]]]:
    """``count`` integrators drain a fresh PostgreSQL queue of ``keys`` on a fresh repository."""
    schema = _pg_schema(pg)
    assert schema is not None
    try:
        repo = _fresh(template, root, f"{name}.git")
        _mergegate(repo, "--db", schema[1], "init").communicate()
        _fill(schema[1], keys)
        took, docs = _runs(repo, ("--db", schema[1]), count)
        assert sum(d["integrated"] for d in docs) == len(keys), docs
        return took, docs
    finally:
        _drop(pg, schema[0])


def _pg_schema(url: str) -> tuple[str, str] | None:
    try:
        import psycopg  # only the PostgreSQL rows need it

        name = f"mg_bench_run_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
    except Exception:  # no server: the PostgreSQL rows are reported as unavailable
        return None
    return name, f"{url}?schema={name}"


def _drop(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def run(quick: bool = False, pg: str | None = DEFAULT_PG) -> dict[str, Any]:
    """Measure the rows; return ``{"rows": [...]}`` in benchmarks/run.py's row format."""
    n = 20 if quick else 150
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        root = Path(tmp)
        template, keys = _build(root / "template", n)
        # Rounds of the shell loop, the raw loop and run, in an order that turns
        # each round, so a drift in the machine's load hits every side; each
        # ratio is the median of the rounds' own ratios.
        rounds = 1 if quick else 3
        shells, raws, runs, alones = [], [], [], []
        for r in range(rounds):
            order = ("shell", "raw", "run")[r % 3 :] + ("shell", "raw", "run")[: r % 3]
            for side in order:
                if side == "shell":
                    shells.append(_shell_loop(_fresh(template, root, f"shell{r}.git"), keys))
                elif side == "raw":
                    raws.append(_raw_loop(_fresh(template, root, f"raw{r}.git"), keys))
                else:
                    took, seconds = _sqlite_run(template, root, f"sqlite{r}.git", keys)
                    runs.append(took)
                    alones.append(seconds)
        shell_s, raw_s, took = (statistics.median(x) for x in (shells, raws, runs))
        shell_rate, raw_rate = n / shell_s * 60, n / raw_s * 60
        alone = f"loop alone {n / statistics.median(alones) * 60:.0f}/min (without start-up)"
        commits_s = _durable_commits(root, 2 * n)
        ceiling = shell_s / (shell_s + commits_s)
        durable = (
            f"2 durable commits per candidate {commits_s / (2 * n) * 1e3:.2f} ms each, "
            f"so at most {ceiling:.2f} with no other cost"
        )
        each = f"median of {rounds}: shell {shell_s:.2f} s, run {took:.2f} s"
        shell_row = _row(
            "mergegate run --once, SQLite, against a shell loop",
            n / took * 60,
            shell_rate,
            "bash: merge-tree + commit-tree + update-ref per candidate",
            f"{n} candidates; {alone}; {each}; {durable}",
            "fig9.run_sqlite_shell",
            SHELL_TARGET,
        )
        rows.append(_paired(shell_row, shells, runs, SHELL_TARGET))
        raw_row = _row(
            "mergegate run --once, SQLite (launch to exit)",
            n / took * 60,
            raw_rate,
            "git merge-tree + commit-tree + update-ref per candidate",
            f"{n} candidates; {alone}; median of {rounds}: raw {raw_s:.2f} s, run {took:.2f} s",
            "fig9.run_sqlite",
        )
        rows.append(_paired(raw_row, raws, runs, TARGET))
        if pg and _pg_schema_ok(pg):
            rounds = 1 if quick else 3
            ones, twos, splits = [], [], []
            for r in range(rounds):
                # Alternate which goes first, so a drift in the machine's load hits both.
                order = (1, 2) if r % 2 == 0 else (2, 1)
                for count in order:
                    took, docs = _pg_round(template, root, f"pg{r}-{count}", pg, keys, count)
                    (ones if count == 1 else twos).append(took)
                    if count == 2:
                        splits.append("/".join(str(d["integrated"]) for d in docs))
            one_s, two_s = statistics.median(ones), statistics.median(twos)
            ratios = [o / t for o, t in zip(ones, twos, strict=True)]
            one_rate = n / one_s * 60
            rows.append(
                _row(
                    "mergegate run --once, PostgreSQL, one integrator",
                    one_rate,
                    raw_rate,
                    "git merge-tree + commit-tree + update-ref per candidate",
                    f"{n} candidates; median of {rounds}: run {one_s:.2f} s",
                    "fig9.run_postgres_one",
                )
            )
            row = _row(
                "mergegate run --once, PostgreSQL, two integrators on one queue",
                n / two_s * 60,
                one_rate,
                "one integrator on PostgreSQL (the row above)",
                f"{n} candidates, integrated {', '.join(splits)}; median of {rounds}: "
                f"both {two_s:.2f} s; ratio is the median of the rounds' ratios",
                "fig9.run_postgres_two",
            )
            row["ratio"] = statistics.median(ratios)
            row["target"] = ">= 1.0x"
            row["met"] = row["ratio"] >= 0.95  # the same work, within the noise
            rows.append(row)
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--pg", default=DEFAULT_PG, help="PostgreSQL server for the PG rows")
    args = parser.parse_args()
    rows = run(quick=args.quick, pg=args.pg)["rows"]
    print(f"{'figure':<66} {'ours/min':>9} {'base/min':>9} {'ratio':>6} {'target':>7}  met")
    for r in rows:
        print(
            f"{r['name']:<66} {r['value']:>9.0f} {r['baseline']:>9.0f} {r['ratio']:>6.2f} "
            f"{r['target']:>7}  {'yes' if r['met'] else 'no'}"
        )
        print(f"  baseline: {r['baseline_name']}; {r['note']}")
    version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    load = os.getloadavg()[0]
    print(f"python {sys.version.split()[0]}, {version.stdout.strip()}, load {load:.1f}")


if __name__ == "__main__":
    main()
