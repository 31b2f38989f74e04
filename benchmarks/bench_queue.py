"""Figure 10: reading the queue (``list``, ``blocked``, ``report``, completion, and the status
page's ``/api/queue``) on a store of 10^6 log entries against the same on 10^4.

Both stores hold the same active queue (one candidate applying under a live
lease, ten queued, three blocked with an open outcome) on top of a synthetic
finished history (figure 6's: 333k candidates at 10^6, a fifth of them once
blocked). So every side does equal work, and the ratio says what the history
costs a read of the queue: the target is <= 2.

Each command is timed as an operator runs it: a process, from a git checkout,
with the store passed by ``--db``; ``/api/queue`` through a ``mergegate serve``
process on 127.0.0.1, over HTTP. ``report --since`` names a window of the last
7,000 log entries (about two hours at figure 6's one entry a second), the
same on both sides. The two sides are timed call by call in alternation
(``measure.interleaved``), seven runs, the ratio the median of the per-run
ratios: on two cores shared with other work a request's latency drifts by
several times within seconds, and each side must get its share of every stretch.

Run alone: ``.venv/bin/python benchmarks/bench_queue.py [--quick]``; or in the
harness: ``benchmarks/run.py --only 10``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench_history import _cli, _Log
from measure import Row, interleaved, medians, row, timed
from workload import BASE_TIME, MAIN

from mergegate.persistence.codec import dump_time

__all__ = ["run"]

#: The window of ``report``: the newest this many log entries (one second apart);
#: less in a quick run, whose small store holds fewer.
WINDOW = 7_200
_QUEUED, _BLOCKED = 10, 3


def _add_queue(path: Path, first_id: int, rows: int) -> None:
    """The active queue, the same on every store: applying (leased), queued and blocked."""
    at = BASE_TIME + timedelta(seconds=rows)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    states = ["applying"] + ["pending"] * _QUEUED + ["blocked"] * _BLOCKED
    moves = {
        "applying": (("submit", None, "pending"), ("start_apply", "pending", "applying")),
        "pending": (("submit", None, "pending"),),
        "blocked": (
            ("submit", None, "pending"),
            ("start_apply", "pending", "applying"),
            ("block", "applying", "blocked"),
        ),
    }
    for n, state in enumerate(states):
        cid, slug, sha = first_id + n, f"queue-{n}", f"{first_id + n:040x}"
        when = dump_time(at + timedelta(seconds=n))
        queued = state == "pending"
        conn.execute(
            "INSERT INTO candidates (id, slug, branch, sha, state, seq, submitted_at, "
            "updated_at, active, queued) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
            (cid, slug, f"feature/{slug}", sha, state, len(moves[state]), when, when, queued),
        )
        for seq, (event, source, dest) in enumerate(moves[state], 1):
            conn.execute(
                "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'bench', ?)",
                (cid, seq, event, source, dest, sha, when),
            )
        if state == "blocked":
            conn.execute(
                "INSERT INTO integration_blocked_outcomes (slug, branch, sha, reason, main_sha, "
                "follow_up_slug, status, follow_up_state, blocked_at, last_blocked_at, "
                "occurrences) VALUES (?, ?, ?, 'merge_conflict', ?, ?, 'open', 'created', ?, ?, 1)",
                (slug, f"feature/{slug}", sha, MAIN, f"{slug}-integration-blocked", when, when),
            )
        if state == "applying":
            expires = dump_time(datetime.now(UTC) + timedelta(days=1))
            conn.execute(
                "INSERT INTO leases (name, owner, candidate_id, acquired_at, expires_at) "
                "VALUES ('main', 'bench@host:1', ?, ?, ?)",
                (cid, when, expires),
            )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def _build(work: Path, name: str, size: int) -> Path:
    path = work / f"fig10-{name}.sqlite3"
    log = _Log(path)
    log.grow(size)
    first, rows = log.candidates + 1, log.rows
    log.close()
    _add_queue(path, first, rows)
    return path


def _window(path: Path, window: int) -> str:
    """The ``--since`` of the report: the time of the ``window``-th newest log entry."""
    conn = sqlite3.connect(path)
    (at,) = conn.execute(
        "SELECT at FROM transitions ORDER BY id DESC LIMIT 1 OFFSET ?", (window - 1,)
    ).fetchone()
    conn.close()
    return str(at)


def _process(
    repo: Path, argv: list[str], env: dict[str, str] | None = None
) -> Callable[[], object]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}

    def go() -> object:
        env_all = {**clean, **(env or {})}
        done = subprocess.run(argv, cwd=repo, env=env_all, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[-3:]} failed: {done.stderr.decode()[:300]}")
        return done

    return go


def _commands(repo: Path, db: Path, window: int) -> dict[str, Callable[[], object]]:
    cli = [*_cli(), "--db", str(db)]
    completion = {
        "_MERGEGATE_COMPLETE": "bash_complete",
        "COMP_WORDS": f"mergegate --db {db} show queue-",
        "COMP_CWORD": "4",
    }
    return {
        "list": _process(repo, [*cli, "list"]),
        "blocked": _process(repo, [*cli, "blocked"]),
        f"report --since (the newest {window:,} log entries)": _process(
            repo, [*cli, "report", "--since", _window(db, window)]
        ),
        "completion of a SLUG": _process(repo, _cli(), completion),
    }


class _Server:
    """``mergegate serve`` on a free 127.0.0.1 port, for as long as the figure needs it."""

    def __init__(self, repo: Path, db: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        argv = [*_cli(), "--db", str(db), "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(argv, cwd=repo, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("mergegate serve did not start") from None
                time.sleep(0.05)

    def get(self) -> object:
        url = f"http://127.0.0.1:{self.port}/api/queue"
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _chunks(name: str, quick: bool) -> int:
    """Pieces per run: a process costs about a second on a loaded machine, a request a few ms."""
    if name.startswith("/api"):
        return 20 if quick else 100
    return 2 if quick else 4


def _interleaved(
    big: Callable[[], object], small: Callable[[], object], runs: int, chunks: int
) -> tuple[float, float, float]:
    """Median seconds per call of each side and the median per-run ratio; each run made of
    ``chunks`` alternating calls of each side, so both share every stretch of the
    machine's load (two cores shared with other work: a request's latency drifts by
    several times within seconds)."""
    big()
    small()
    return medians(
        [interleaved(lambda: timed(big), lambda: timed(small), chunks=chunks) for _ in range(runs)]
    )


def run(quick: bool = False, work: Path | None = None) -> dict[str, list[Row]]:
    """Figure 10's rows: each read at the big log against the small one, paired."""
    import tempfile

    small, big = (1_000, 10_000) if quick else (10_000, 1_000_000)
    runs = 3 if quick else 7
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        root = Path(tmp)
        repo = root / "checkout"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        base_db, big_db = _build(root, "base", small), _build(root, "big", big)
        window = min(WINDOW, small * 7 // 10)
        ours, theirs = _commands(repo, big_db, window), _commands(repo, base_db, window)
        servers = [_Server(repo, big_db), _Server(repo, base_db)]
        try:
            ours["/api/queue (HTTP, mergegate serve)"] = servers[0].get
            theirs["/api/queue (HTTP, mergegate serve)"] = servers[1].get
            rows = []
            for letter, name in zip("abcdefgh", ours, strict=False):
                mine, base, ratio = _interleaved(
                    ours[name], theirs[name], runs, _chunks(name, quick)
                )
                rows.append(
                    row(
                        f"10{letter}",
                        f"`{name}` with {big:,} log rows",
                        value=mine * 1e3,
                        unit="ms/call",
                        baseline_name=f"the same with {small:,} log rows",
                        baseline=base * 1e3,
                        ratio=ratio,
                        target="<= 2.0 (time)",
                        met=ratio <= 2.0,
                        key=f"fig10.{name.split()[0].strip('/').replace('/', '_')}",
                    )
                )
        finally:
            for server in servers:
                server.stop()
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^3 against 10^4: a smoke run")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: tmp)")
    args = parser.parse_args()
    from run import table

    print(table(run(quick=args.quick, work=args.dir)["rows"]))


if __name__ == "__main__":
    sys.exit(main())
