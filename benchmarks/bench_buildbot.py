"""Figure 11: checks on Buildbot, `run --once --concurrency 4` against `--concurrency 1`.

A real Buildbot master and four workers on 127.0.0.1 (tests/buildbotserver.py),
a git daemon serving the remote, one builder whose build fetches the
speculative ref and runs ``check.sh``: a 2 s sleep, then the candidates'
own scripts. 16 candidates, each adding a file of its own; one (c05) fails.
The same queue is integrated from the same start at concurrency 1 and 4, each
``mergegate run --once`` a real subprocess on the default SQLite store, timed
from launch to exit; the ratio is the figure (target: at least 3x).

The overhead mergegate adds per build: for every build it triggered, the time
from its trigger to its result as mergegate saw them (``check_builds``)
minus Buildbot's own time for the same build request (``submitted_at`` to
``complete_at``; whole seconds in Buildbot's API, so a mean over many builds).

    .venv/bin/python benchmarks/bench_buildbot.py [--quick]

``run()`` returns ``{"rows": [...]}`` for ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from buildbotserver import BuildbotMaster, GitDaemon, Worker  # noqa: E402

CANDIDATES = 16
FAILING = 5
BUILD_SECONDS = 2
WORKERS = 4
TARGET = 3.0
#: Seconds between two status reads per build: each read costs the master CPU,
#: and with four links polling at once on two cores that cost slows the builds.
POLL = 1.0
_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))} | {
    "LC_ALL": "C",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
    "MERGEGATE_ACTOR": "bench",
}


def _git(where: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=where, env=_ENV, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _mergegate(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(repo), *args],
        env=_ENV,
        capture_output=True,
        text=True,
        check=False,
    )


def _queue(root: Path, daemon: GitDaemon, master: BuildbotMaster, name: str, n: int) -> Path:
    """An integrator repository with ``n`` candidates submitted, its remote served by ``daemon``."""
    work, bare = root / f"{name}-work", root / f"{name}.git"
    _git(root, "init", "-q", "-b", "main", str(work))
    (work / "check.sh").write_text(
        f"sleep {BUILD_SECONDS}\n"
        'for f in checks.d/*.sh; do [ -e "$f" ] || continue; sh "$f" || exit 1; done\n'
    )
    _git(work, "add", "check.sh")
    _git(work, "commit", "-q", "-m", "check script")
    for i in range(n):
        _git(work, "checkout", "-q", "-b", f"c{i:02}", "main")
        script = work / "checks.d" / f"c{i:02}.sh"
        script.parent.mkdir(exist_ok=True)
        script.write_text("exit 1\n" if i == FAILING else "exit 0\n")
        _git(work, "add", str(script))
        _git(work, "commit", "-q", "-m", f"c{i:02}")
    _git(root, "clone", "-q", "--bare", "--mirror", str(work), str(bare))
    _git(bare, "remote", "remove", "origin")
    _git(daemon.base, "clone", "-q", "--bare", str(bare), f"{name}.git")
    _git(bare, "remote", "add", "origin", daemon.url(f"{name}.git"))
    (bare / "mergegate.toml").write_text(
        f'remote = "origin"\n\n[buildbot]\nurl = "{master.url}"\nbuilders = ["checks"]\n'
        f"poll = {POLL}\n"
    )
    for args in (("init",), *(("submit", f"c{i:02}") for i in range(n))):
        done = _mergegate(bare, *args)
        if done.returncode != 0:
            raise RuntimeError(f"mergegate {' '.join(args)}: {done.stderr}")
    return bare


def _times(repo: Path, master: BuildbotMaster) -> tuple[list[float], list[float]]:
    """Per finished build: mergegate's trigger-to-result and Buildbot's own, in seconds."""
    with sqlite3.connect(repo / "mergegate" / "mergegate.sqlite3") as conn:
        rows = conn.execute(
            "SELECT build_id, triggered_at, finished_at FROM check_builds "
            "WHERE state IN ('passed', 'failed')"
        ).fetchall()
    conn.close()
    ours, theirs = [], []
    for build_id, triggered, finished in rows:
        start, end = (
            datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (triggered, finished)
        )
        request = master.get(f"buildrequests/{build_id}")["buildrequests"][0]
        ours.append((end - start).total_seconds())
        theirs.append(float(request["complete_at"] - request["submitted_at"]))
    return ours, theirs


def _overlap(repo: Path, master: BuildbotMaster) -> int:
    """The most builds of this run that Buildbot had running at one time."""
    with sqlite3.connect(repo / "mergegate" / "mergegate.sqlite3") as conn:
        ids = {int(r[0]) for r in conn.execute("SELECT build_id FROM check_builds")}
    conn.close()
    spans = [
        (b["started_at"], b["complete_at"])
        for b in master.get("builds")["builds"]
        if b["buildrequestid"] in ids and b["complete_at"] is not None
    ]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def _one(
    root: Path, daemon: GitDaemon, master: BuildbotMaster, concurrency: int, n: int
) -> dict[str, Any]:
    repo = _queue(root, daemon, master, f"q{concurrency}", n)
    start = time.perf_counter()
    done = _mergegate(repo, "--json", "run", "--once", "--concurrency", str(concurrency))
    seconds = time.perf_counter() - start
    doc = json.loads(done.stdout)["result"]
    ours, theirs = _times(repo, master)
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "integrated": doc["integrated"],
        "blocked": doc["blocked"],
        "builds": len(ours),
        "most_at_once": _overlap(repo, master),
        "mergegate_s": ours,
        "buildbot_s": theirs,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Both concurrencies on one master; rows for benchmarks/run.py."""
    # A quick run shows that the figure runs and yields its ratio: the fewest
    # candidates that still hold the failing one (c05) and a chain to fill 4 workers.
    n = FAILING + 1 if quick else CANDIDATES
    with tempfile.TemporaryDirectory(prefix="mergegate-bench-bb-") as tmp:
        root = Path(tmp)
        (root / "served").mkdir()
        daemon = GitDaemon(root / "served").start()
        names = [f"w{i}" for i in range(1, WORKERS + 1)]
        master = BuildbotMaster(root, {"checks": names}, names, incremental=True)
        workers: list[Worker] = []
        try:
            master.start()
            workers = [Worker(master, root, name).start() for name in names]
            serial = _one(root, daemon, master, 1, n)
            parallel = _one(root, daemon, master, 4, n)
        finally:
            for worker in workers:
                worker.stop()
            master.stop()
            daemon.stop()
    ratio = serial["seconds"] / parallel["seconds"]
    ours = serial["mergegate_s"] + parallel["mergegate_s"]
    theirs = serial["buildbot_s"] + parallel["buildbot_s"]
    overhead = statistics.mean(ours) - statistics.mean(theirs)
    note = (
        f"{n} candidates, 1 failing, {BUILD_SECONDS} s builds, {WORKERS} workers; "
        f"c1 {serial['seconds']:.1f} s ({serial['builds']} builds), "
        f"c4 {parallel['seconds']:.1f} s ({parallel['builds']} builds); "
        f"integrated/blocked c1 {serial['integrated']}/{serial['blocked']}, "
        f"c4 {parallel['integrated']}/{parallel['blocked']}; most builds at once "
        f"c1 {serial['most_at_once']}, c4 {parallel['most_at_once']}"
    )
    rows = [
        {
            "name": "Buildbot checks: run --once --concurrency 4, speed-up",
            "value": ratio,
            "unit": "x",
            "baseline_name": "--concurrency 1, same queue",
            "baseline": 1.0,
            "ratio": ratio,
            "target": f">= {TARGET:g}x",
            "met": ratio >= TARGET,
            "note": note,
        },
        {
            "name": "Buildbot checks: mergegate's overhead per build",
            "value": overhead,
            "unit": "s",
            "baseline_name": "Buildbot's own trigger-to-finish (mean)",
            "baseline": statistics.mean(theirs),
            "ratio": statistics.mean(ours) / statistics.mean(theirs),
            "target": "",
            "met": None,
            "note": f"mean over {len(ours)} builds; Buildbot's times are whole seconds",
        },
    ]
    return {"rows": rows, "serial": serial, "parallel": parallel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    result = run(quick=args.quick)
    for item in result["rows"]:
        print(
            f"{item['name']}: {item['value']:.2f} {item['unit']} "
            f"(baseline {item['baseline_name']} {item['baseline']:.2f}; {item['note']})"
        )
    for key in ("serial", "parallel"):
        r = result[key]
        print(
            f"{key}: {r['seconds']:.2f} s; mergegate per build mean "
            f"{statistics.mean(r['mergegate_s']):.2f} s, Buildbot's "
            f"{statistics.mean(r['buildbot_s']):.2f} s"
        )


if __name__ == "__main__":
    main()
