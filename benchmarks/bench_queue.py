"""Figure 10: reading the queue (``list``, ``blocked``, ``report``, completion, and the status
page's ``/api/queue``) on a store of 10^6 log entries against the same on 10^4.

Both stores hold the same active queue (one candidate applying under a live
lease, ten queued, three blocked with an open outcome, their evidence and
their follow-ups) on top of a finished history: most candidates integrated
cleanly, one in five blocked once (evidence, follow-up written, remediated,
resumed, integrated), one in twenty withdrawn. The rows are the ones the
Engine writes (``_History`` copies their columns: queue positions, lease
owners, main shas, outcomes resolved at resume), bulk-inserted in one
transaction into a store that mergegate created and migrated; nothing else is
done to it (no ``ANALYZE``: mergegate never runs one, so neither does this).
So every side does equal work, and the ratio says what the history costs a
read of the queue: the target is <= 2.

The log ends at the time the stores are built, one entry every six seconds,
so ``report --since 12h``, as an operator types it, reads the same 7,200
entries from either store.

Each command is timed as an operator runs it: a process, from a git checkout,
with the store passed by ``--db``; ``/api/queue`` through a ``mergegate serve``
process on 127.0.0.1, over HTTP. The two sides are timed call by call in
alternation (``measure.interleaved``), seven runs, the ratio the median of the
per-run ratios: on two cores shared with other work a request's latency drifts
by several times within seconds, and each side must get its share of every
stretch. Beside each time is the peak resident memory (RSS) of the process
that answered (``wait4``'s ``ru_maxrss`` of three more runs, through a small
launcher; for ``serve``, its ``VmHWM`` after all the requests), and the machine's load average
at the start and the end of the figure.

The same reads then run on PostgreSQL (the server of ``MERGEGATE_TEST_PG``, two
schemas dropped afterwards); with no server, one row says why.

Run alone: ``.venv/bin/python benchmarks/bench_queue.py [--quick] [--no-postgres]``;
or in the harness: ``benchmarks/run.py --only 10 --out benchmarks/results-queue.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_history import _cli
from measure import Row, interleaved, medians, row, timed
from workload import MAIN

from mergegate.persistence import SQLiteStore
from mergegate.persistence.codec import dump_time

__all__ = ["SINCE", "STEP", "build", "run"]

#: Seconds between two log entries: the last 12 hours hold 7,200 of them on either store.
STEP = 6
#: ``report``'s window, as an operator types it.
SINCE = "12h"
QUEUED, BLOCKED = 10, 3
#: figure 8's server, when ``MERGEGATE_TEST_PG`` names none (bench_postgres.DEFAULT_PG).
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
OWNER = "integrator@bench:1"
_REASONS = ("merge_conflict", "checks_failed", "main_moved")

# The moves of each kind of candidate, with the note the Engine writes in ``reason``.
_CLEAN = (("submit", None, "pending"), ("start_apply", "pending", "applying"),
          ("integrate", "applying", "integrated"))  # fmt: skip
_BLOCKED_ONCE = (
    ("submit", None, "pending"),
    ("start_apply", "pending", "applying"),
    ("block", "applying", "blocked"),
    ("start_remediation", "blocked", "remediating"),
    ("resume", "remediating", "retry"),
    ("start_apply", "retry", "applying"),
    ("integrate", "applying", "integrated"),
)
_WITHDRAWN = (("submit", None, "pending"), ("withdraw", "pending", "withdrawn"))
_OPEN_BLOCK = _BLOCKED_ONCE[:3]
# A block's evidence, as the store writes it for a merge conflict.
_EVIDENCE = dict.fromkeys(("diagnostic", "lease_owner", "lease_since")) | {
    "checks": [],
    "conflicted_paths": ["src/a.py"],
    "files": [],
    "main_attempts": [],
}
_ACTIVE = {"pending", "applying", "blocked", "remediating", "retry"}
_QUEUED_STATES = {"pending", "retry"}


class _History:
    """The rows of a store whose log holds ``size`` entries (at least 30), the last at ``end``.

    Each column is what the Engine writes for the same move (a start_apply
    names its lease owner, an integrate its main, a resume puts the candidate
    at the back of the queue and resolves its outcome, a block writes its
    evidence and a follow-up that the outbox has delivered).
    """

    def __init__(self, size: int, end: datetime) -> None:
        self.start = end - timedelta(seconds=STEP * (size - 1))
        self.entries = 0
        self.queue_pos = 0
        self.candidates: list[tuple[Any, ...]] = []
        self.transitions: list[tuple[Any, ...]] = []
        self.outcomes: list[tuple[Any, ...]] = []
        self.evidence: list[tuple[Any, ...]] = []
        self.outbox: list[tuple[Any, ...]] = []
        self.lease: tuple[Any, ...] | None = None
        queue = len(_OPEN_BLOCK) * BLOCKED + 2 + QUEUED
        i = 0
        while size - queue - self.entries >= 9:
            i += 1
            kind = _WITHDRAWN if i % 20 == 7 else _BLOCKED_ONCE if i % 5 == 0 else _CLEAN
            self._candidate(f"item-{i}", kind, _REASONS[i % 3])
        # The last 2 to 8 entries of the history, exactly, in threes and twos.
        left = size - queue - self.entries
        while left > 0:
            i += 1
            kind = _CLEAN if left in (3, 5, 6, 7, 8) else _WITHDRAWN
            self._candidate(f"item-{i}", kind, _REASONS[i % 3])
            left -= len(kind)
        for n in range(BLOCKED):
            self._candidate(f"queue-blocked-{n}", _OPEN_BLOCK, _REASONS[n % 3])
        # The one applying was submitted first and is taken last, after ten more submits.
        applying = self._candidate("queue-applying", _CLEAN[:1], "")
        for n in range(QUEUED):
            self._candidate(f"queue-pending-{n}", _CLEAN[:1], "")
        self._move(applying, _CLEAN[1], "")

    def _at(self) -> str:
        at = dump_time(self.start + timedelta(seconds=STEP * self.entries))
        self.entries += 1
        return at

    def _candidate(self, slug: str, moves: tuple[tuple[Any, ...], ...], reason: str) -> list[Any]:
        cid = len(self.candidates) + 1
        sha = hashlib.sha1(slug.encode(), usedforsecurity=False).hexdigest()
        # id, slug, branch, sha, state, seq, submitted_at, updated_at, active, queued, queue_pos
        record = [cid, slug, f"feature/{slug}", sha, None, 0, None, None, 0, 0, None]
        self.candidates.append(record)  # type: ignore[arg-type]
        for move in moves:
            self._move(record, move, reason)
        return record

    def _move(self, record: list[Any], move: tuple[Any, ...], reason: str) -> None:
        event, source, dest = move
        cid, slug, branch, sha = record[:4]
        at = self._at()
        record[5] += 1
        record[4], record[7] = dest, at
        record[6] = record[6] or at
        record[8], record[9] = int(dest in _ACTIVE), int(dest in _QUEUED_STATES)
        lease_owner = main_sha = None
        note: str | None = None
        if event in ("submit", "resume"):
            self.queue_pos += 1
            record[10] = self.queue_pos
        if event == "start_apply":
            lease_owner, note = OWNER, f"lease owner={OWNER}"
            if dest == "applying" and slug == "queue-applying":
                expires = dump_time(datetime.now(UTC) + timedelta(days=1))
                self.lease = ("main", OWNER, cid, at, expires)
        elif event == "integrate":
            main_sha, note = MAIN, f"main={MAIN}"
        elif event == "withdraw":
            note = "superseded by another change"
        elif event == "block":
            note = reason
            blocked_id = len(self.outcomes) + 1
            follow_up = f"{slug}-integration-blocked-{sha[:7]}"
            # id, slug, branch, sha, reason, main_sha, follow_up_slug, status,
            # follow_up_state, blocked_at, last_blocked_at, resumed_at, occurrences, resolved_at
            outcome = [blocked_id, slug, branch, sha, reason, MAIN, follow_up, "open", "created"]
            self.outcomes.append([*outcome, at, at, None, 1, None])
            report = {
                "detail": "merge-tree reported conflicts",
                "evidence": _EVIDENCE,
                "main_sha": MAIN,
                "reason": reason,
            }
            self.evidence.append((blocked_id, 1, record[5], at, json.dumps(report)))
            self.outbox.append((follow_up, blocked_id, at, 1, at))
        elif event == "resume":
            outcome = self.outcomes[-1]
            outcome[7], outcome[11], outcome[13] = "resumed", at, at
        self.transitions.append(
            (cid, record[5], event, source, dest, sha, "bench", at, note, lease_owner, main_sha)
        )

    def tables(self) -> list[tuple[str, tuple[str, ...], list[Any]]]:
        """Each table's name, columns and rows, in the order their references need."""
        return [
            ("candidates", ("id", "slug", "branch", "sha", "state", "seq", "submitted_at",
                            "updated_at", "active", "queued", "queue_pos"), self.candidates),
            ("transitions", ("id", "candidate_id", "seq", "event", "source", "dest", "sha",
                             "actor", "at", "reason", "lease_owner", "main_sha"),
             [(n, *t) for n, t in enumerate(self.transitions, 1)]),
            ("integration_blocked_outcomes", ("id", "slug", "branch", "sha", "reason",
                                              "main_sha", "follow_up_slug", "status",
                                              "follow_up_state", "blocked_at", "last_blocked_at",
                                              "resumed_at", "occurrences", "resolved_at"),
             self.outcomes),
            ("blocked_evidence", ("id", "blocked_id", "number", "seq", "at", "report"),
             [(n, *e) for n, e in enumerate(self.evidence, 1)]),
            ("follow_up_outbox", ("id", "follow_up_slug", "blocked_id", "created_at", "attempts",
                                  "done_at"), [(n, *o) for n, o in enumerate(self.outbox, 1)]),
            ("leases", ("name", "owner", "candidate_id", "acquired_at", "expires_at"),
             [self.lease] if self.lease else []),
        ]  # fmt: skip

    def write(self, path: Path) -> None:
        """Into a new store at ``path``, created and migrated by mergegate, in one transaction."""
        SQLiteStore(path).close()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA synchronous=OFF")  # loading, not measuring
        conn.execute("BEGIN")
        for table, columns, rows in self.tables():
            marks = ", ".join("?" * len(columns))
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()

    def write_postgres(self, url: str) -> None:
        """Into a new store at ``url`` (its ``?schema=``), created and migrated by mergegate,
        by ``COPY`` in one transaction; then each sequence where mergegate's would be."""
        import psycopg

        from mergegate.persistence import open_store

        open_store(url).close()
        conninfo, schema = url.split("?schema=")
        with psycopg.connect(conninfo) as conn:
            conn.execute(f"SET search_path TO {schema}")
            with conn.cursor() as cur:
                for table, columns, rows in self.tables():
                    # SQLite's 0 and 1 are PostgreSQL's booleans here.
                    flags = [c in ("active", "queued") for c in columns]
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for r in rows:
                            copy.write_row(
                                [bool(v) if f else v for v, f in zip(r, flags, strict=True)]
                            )
                for table in ("candidates", "transitions", "integration_blocked_outcomes",
                              "blocked_evidence", "follow_up_outbox"):  # fmt: skip
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT MAX(id) FROM {table}))"
                    )
                cur.execute(
                    "SELECT setval('candidates_queue_pos_seq', "
                    "(SELECT MAX(queue_pos) FROM candidates))"
                )
            conn.execute("ANALYZE")  # what autovacuum does to a table this size, at once


def build(path: Path | str, size: int, end: datetime) -> dict[str, int]:
    """A store at ``path`` (a SQLite file, or a PostgreSQL URL with ``?schema=``) with
    ``size`` log entries, the last at ``end``; what it holds."""
    history = _History(size, end)
    if isinstance(path, str):
        history.write_postgres(path)
    else:
        history.write(path)
    return {
        "transitions": len(history.transitions),
        "candidates": len(history.candidates),
        "blocked_outcomes": len(history.outcomes),
    }


# Runs argv with its output discarded and prints the peak RSS (kB) of that process alone.
# Through this small launcher, not from the harness: a child that the harness spawns
# inherits the harness's own peak in ``ru_maxrss`` (Linux records the parent's high-water
# mark at exec after a fork or vfork), and the harness holds the stores' rows.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


class _Process:
    """One command as an operator runs it: a process from a git checkout."""

    def __init__(self, repo: Path, argv: list[str], env: dict[str, str] | None = None) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}
        self.repo, self.argv, self.env = repo, argv, {**clean, **(env or {})}
        self.out = b""

    def __call__(self) -> None:
        done = subprocess.run(
            self.argv, cwd=self.repo, env=self.env, capture_output=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{self.argv[-3:]} failed: {done.stderr.decode()[:300]}")
        self.out = done.stdout

    def peak_rss(self) -> float:
        """The peak resident memory of one run, in bytes."""
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *self.argv],
            cwd=self.repo,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return float(done.stdout) * 1024  # Linux: kilobytes


class _Server:
    """``mergegate serve`` on a free 127.0.0.1 port, for as long as the figure needs it."""

    def __init__(self, repo: Path, db: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        argv = [*_cli(), "--db", db, "serve", "--port", str(self.port)]
        self.proc = subprocess.Popen(argv, cwd=repo, stdout=subprocess.DEVNULL)
        self.out = b""
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("mergegate serve did not start") from None
                time.sleep(0.05)

    def __call__(self) -> None:
        url = f"http://127.0.0.1:{self.port}/api/queue"
        with urllib.request.urlopen(url, timeout=60) as response:
            self.out = response.read()

    def peak_rss(self) -> float:
        """The server's peak resident memory so far, in bytes (its own: exec starts it anew)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc/PID/status")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _commands(repo: Path, db: str) -> dict[str, _Process]:
    cli = [*_cli(), "--db", db]

    def completion(word: str) -> dict[str, str]:
        return {
            "_MERGEGATE_COMPLETE": "bash_complete",
            "COMP_WORDS": f"mergegate --db {db} show {word}",
            "COMP_CWORD": "4",
        }

    return {
        "list": _Process(repo, [*cli, "list"]),
        "blocked": _Process(repo, [*cli, "blocked"]),
        f"report --since {SINCE}": _Process(repo, [*cli, "report", "--since", SINCE]),
        "completion of a SLUG (`show queue-<TAB>`)": _Process(repo, _cli(), completion("queue-")),
        "completion of a SLUG (`show <TAB>`, the first 200 of every slug)": _Process(
            repo, _cli(), completion("")
        ),
    }


def _answered(name: str, out: bytes) -> str:
    """What is wrong with a command's answer (it must show the whole active queue), or ''."""
    text = out.decode(errors="replace")
    wanted = {
        "list": ["queue-applying", *(f"queue-pending-{n}" for n in range(QUEUED))],
        "blocked": [f"queue-blocked-{n}" for n in range(BLOCKED)],
        "report": ["queue-applying", "queue-pending-0"],
        "completion of a SLUG (`show queue-": ["queue-applying", "queue-blocked-0"],
        "completion of a SLUG (`show <TAB>": ["item-1"],
        "/api/queue": ["queue-applying", "queue-pending-9", "queue-blocked-2"],
    }
    for prefix, slugs in wanted.items():
        if name.startswith(prefix):
            missing = [s for s in slugs if s not in text]
            return f"WARNING: the answer lacks {', '.join(missing)}" if missing else ""
    return ""


def _chunks(name: str, quick: bool) -> int:
    """Pieces per run: a process costs about a second on a loaded machine, a request a few ms."""
    if name.startswith("/api"):
        return 20 if quick else 100
    return 1 if quick else 4


def _interleaved(
    big: Callable[[], object], small: Callable[[], object], runs: int, chunks: int
) -> tuple[float, float, float]:
    """Median seconds per call of each side and the median per-run ratio; each run made of
    ``chunks`` alternating calls of each side, so both share every stretch of the
    machine's load (two cores shared with other work: a request's latency drifts by
    several times within seconds)."""
    return medians(
        [interleaved(lambda: timed(big), lambda: timed(small), chunks=chunks) for _ in range(runs)]
    )


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _measure(repo: Path, big: str, small: str, quick: bool) -> list[tuple[Any, ...]]:
    """Every read on the two stores, interleaved: (name, times, peak RSS, what is wrong)."""
    runs = 1 if quick else 7  # a quick run shows that every read runs and answers
    ours: dict[str, Any] = dict(_commands(repo, big))
    theirs: dict[str, Any] = dict(_commands(repo, small))
    servers = [_Server(repo, big), _Server(repo, small)]
    ours[_API], theirs[_API] = servers
    measured = []
    try:
        for name, mine in ours.items():
            base = theirs[name]
            mine()  # the warm-up, which also checks what each side answers
            base()
            wrong = _answered(name, mine.out) or _answered(name, base.out)
            times = _interleaved(mine, base, runs, _chunks(name, quick))
            # Memory apart from the timings (the launcher costs a process start); the
            # median of three runs of each side, alternately (one in a quick run).
            peaks = [(mine.peak_rss(), base.peak_rss()) for _ in range(1 if quick else 3)]
            rss = tuple(statistics.median(side) for side in zip(*peaks, strict=True))
            measured.append((name, times, rss, wrong))
    finally:
        for server in servers:
            server.stop()
    return measured


def _rows(
    backend: str, first: int, measured: list[tuple[Any, ...]], sizes: tuple[int, int], note: str
) -> list[Row]:
    small, big = sizes
    rows = []
    for i, (name, (mine, base, ratio), (rss, base_rss), wrong) in enumerate(measured):
        rss_ratio = rss / base_rss
        memory = (
            f"peak RSS {rss / 2**20:.1f} MB against {base_rss / 2**20:.1f} MB, "
            f"ratio {rss_ratio:.2f}; {note if i == 0 else note.split('; ', maxsplit=1)[0]}"
        )
        key = "api_queue" if name == _API else name.split()[0]
        r = row(
            f"10{_LETTERS[first + i]}",
            f"`{name}` on {backend} with {big:,} log rows",
            value=mine * 1e3,
            unit="ms/call",
            baseline_name=f"the same with {small:,} log rows",
            baseline=base * 1e3,
            ratio=ratio,
            target="<= 2.0 (time)",
            met=ratio <= 2.0 and not wrong,
            note=f"{wrong}; {memory}" if wrong else memory,
            key=f"fig10.{'pg_' if backend == 'PostgreSQL' else ''}{key}"
            + ("_all" if "first 200" in name else ""),  # stable: letters may change
        )
        r.update(rss_mb=rss / 2**20, baseline_rss_mb=base_rss / 2**20, rss_ratio=rss_ratio)
        r.update(backend=backend, log_rows=big, baseline_log_rows=small)
        rows.append(r)
    return rows


def _held(held: dict[str, dict[str, int]]) -> str:
    big, small = held["big"], held["small"]
    return (
        f"{big['candidates']:,} candidates and {big['blocked_outcomes']:,} blocked outcomes "
        f"against {small['candidates']:,} and {small['blocked_outcomes']:,}"
    )


def _postgres(
    repo: Path, sizes: tuple[int, int], end: datetime, quick: bool, first: int
) -> list[Row]:
    """The same reads on PostgreSQL (the server of ``MERGEGATE_TEST_PG``), in two schemas."""
    import psycopg

    url = os.environ.get("MERGEGATE_TEST_PG", DEFAULT_PG)
    schemas = {side: f"mg_bench10_{os.getpid()}_{side}" for side in ("small", "big")}
    urls = {side: f"{url}?schema={schema}" for side, schema in schemas.items()}
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as err:
        why = f"no PostgreSQL server at {url}: {str(err).strip().splitlines()[0]}"
        return [row(f"10{_LETTERS[first]}", "the reads on PostgreSQL", value=None, unit="",
                    baseline_name="", baseline=None, ratio=None, target="", met=None,
                    note=f"not available: {why}")]  # fmt: skip
    try:
        held = {side: build(urls[side], size, end) for side, size in zip(urls, sizes, strict=True)}
        load = f"load average {_load()} at the start"
        measured = _measure(repo, urls["big"], urls["small"], quick)
        note = f"{load}, {_load()} at the end; {_held(held)}"
        return _rows("PostgreSQL", first, measured, sizes, note)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for schema in schemas.values():
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run(
    quick: bool = False,
    work: Path | None = None,
    sizes: tuple[int, int] | None = None,
    postgres: bool = True,
) -> dict[str, list[Row]]:
    """Figure 10's rows: each read at the big log against the small one, paired; on SQLite,
    then on PostgreSQL when a server answers (``postgres=False`` skips it)."""
    small, big = sizes or ((1_000, 10_000) if quick else (10_000, 1_000_000))
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        root = Path(tmp)
        repo = root / "checkout"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        end = datetime.now(UTC)
        small_db, big_db = root / "fig10-small.sqlite3", root / "fig10-big.sqlite3"
        held = {"small": build(small_db, small, end), "big": build(big_db, big, end)}
        load = f"load average {_load()} at the start"
        measured = _measure(repo, str(big_db), str(small_db), quick)
        note = f"{load}, {_load()} at the end; {_held(held)}"
        rows = _rows("SQLite", 0, measured, (small, big), note)
        if postgres:
            rows += _postgres(repo, (small, big), end, quick, len(rows))
    return {"rows": rows}


_API = "/api/queue (HTTP, mergegate serve)"
_LETTERS = "abcdefghijklmnop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^3 against 10^4: a smoke run")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    from run import table

    print(table(run(quick=args.quick, work=args.dir, postgres=not args.no_postgres)["rows"]))


if __name__ == "__main__":
    sys.exit(main())
