"""Figure 6: the operator's history queries as the transition log grows from 10^3 to 10^6 rows."""

from __future__ import annotations

import gc
import itertools
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import attrs
from measure import Row, paired, row
from workload import BASE_TIME, MAIN, Scale

from mergegate.persistence import SQLiteStore
from mergegate.persistence.codec import dump_time
from mergegate.statemachine import Reason

__all__ = ["SCAN", "figure_history"]


@attrs.define
class _Log:
    """Grows a real-schema database with a synthetic history, by direct SQL inserts.

    Four candidates in five integrate cleanly (3 entries); the fifth is blocked
    once, remediated and integrated (7 entries, one blocked outcome). Entries
    are one second apart, so "since" windows are easy to place.
    """

    path: Path
    rows: int = 0
    candidates: int = 0
    _conn: sqlite3.Connection = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        SQLiteStore(self.path).close()
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.execute("PRAGMA synchronous=OFF")  # loading, not measuring

    _CLEAN = (("submit", None, "pending"), ("start_apply", "pending", "applying"),
              ("integrate", "applying", "integrated"))  # fmt: skip
    _BLOCKED = (
        ("submit", None, "pending"),
        ("start_apply", "pending", "applying"),
        ("block", "applying", "blocked"),
        ("start_remediation", "blocked", "remediating"),
        ("resume", "remediating", "retry"),
        ("start_apply", "retry", "applying"),
        ("integrate", "applying", "integrated"),
    )
    _REASONS = (Reason.MERGE_CONFLICT, Reason.CHECKS_FAILED, Reason.MAIN_MOVED)

    def grow(self, target: int) -> None:
        candidates, transitions, blocked = [], [], []
        while self.rows < target:
            i = self.candidates = self.candidates + 1
            slug, sha = f"item-{i}", f"{i:040x}"
            moves = self._BLOCKED if i % 5 == 0 else self._CLEAN
            first = BASE_TIME + timedelta(seconds=self.rows)
            last = dump_time(first + timedelta(seconds=len(moves) - 1))
            candidates.append(
                (i, slug, f"feature/{slug}", sha, "integrated", len(moves), dump_time(first), last)
            )
            for seq, (event, source, dest) in enumerate(moves, 1):
                at = dump_time(BASE_TIME + timedelta(seconds=self.rows))
                transitions.append((i, seq, event, source, dest, sha, "bench", at))
                if event == "block":
                    reason = self._REASONS[i % len(self._REASONS)].value
                    blocked.append((slug, f"feature/{slug}", sha, reason, MAIN,
                                    f"{slug}-integration-blocked-{sha[:7]}", at, at))  # fmt: skip
                self.rows += 1
        c = self._conn
        c.execute("BEGIN")
        # Named columns: every candidate is integrated, so neither active nor queued.
        c.executemany(
            "INSERT INTO candidates (id, slug, branch, sha, state, seq, submitted_at, "
            "updated_at, active, queued) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0)",
            candidates,
        )
        c.executemany(
            "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            transitions,
        )
        c.executemany(
            "INSERT INTO integration_blocked_outcomes (slug, branch, sha, reason, main_sha, "
            "follow_up_slug, status, follow_up_state, blocked_at, last_blocked_at, occurrences) "
            "VALUES (?, ?, ?, ?, ?, ?, 'resumed', 'created', ?, ?, 1)",
            blocked,
        )
        c.execute("COMMIT")
        c.execute("ANALYZE")

    def backup(self, target: sqlite3.Connection) -> None:
        self._conn.backup(target)

    def close(self) -> None:
        self._conn.close()


SCAN = "(contrast) a full scan of the log"
SHOW = "show SLUG (the CLI, a process)"
_KEYS = {
    "history SLUG": "history",
    "history SLUG --since": "history_since",
    "blocked --since (last 20)": "blocked_since",
    "blocked --reason --since": "blocked_reason_since",
    SHOW: "cli_show",
}


def _queries(store: SQLiteStore, candidates: int) -> dict[str, Callable[[], object]]:
    """The operator's queries, each returning a result whose size does not grow with the log."""
    # Three candidates spread over the log: the oldest, the middle, the newest.
    slugs = [f"item-{i}" for i in (1, max(1, candidates // 2), candidates)]
    cursor = itertools.cycle(slugs)
    newest = store.history_of(slugs[-1])
    since_entry = newest[1].at
    rows = store._query(
        "SELECT last_blocked_at FROM integration_blocked_outcomes "
        "ORDER BY last_blocked_at DESC LIMIT 1 OFFSET 19"
    )
    since_blocked = datetime.fromisoformat(rows[0][0]) if rows else BASE_TIME
    return {
        "history SLUG": lambda: store.history_of(next(cursor)),
        "history SLUG --since": lambda: store.history_of(slugs[-1], since_entry),
        "blocked --since (last 20)": lambda: store.blocked_records(since_blocked),
        "blocked --reason --since": lambda: store.blocked_records(
            since_blocked, Reason.CHECKS_FAILED
        ),
    }


def _cli() -> list[str]:
    """The installed ``mergegate`` command beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).parent / "mergegate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mergegate.cli"]


def _show_through_cli(repo: Path, db: Path, slug: str) -> Callable[[], object]:
    """``mergegate --db DB show SLUG`` as an operator runs it: a process, from a git checkout."""
    argv = [*_cli(), "--db", str(db), "show", slug]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}

    def run() -> object:
        done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mergegate show failed: {done.stderr.decode()[:200]}")
        return done

    return run


def _time_query(query: Callable[[], object], repeats: int) -> float:
    """Median seconds per call of ``query`` over ``repeats`` calls, after one warm-up call."""
    query()
    gc.collect()
    gc.disable()
    try:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            query()
            times.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return statistics.median(times)


def figure_history(work: Path, scale: Scale) -> tuple[list[Row], dict[str, dict[int, float]]]:
    """Figure 6: rows for the largest log against ``scale.log_base``, and the growth curve.

    The curve (``{query: {log rows: seconds}}``, for the plot) is timed as the
    log grows. The rows time the two sizes again, alternately, from two files,
    so that the ratio does not depend on how busy the machine was a minute apart.
    """
    path, base_path = work / "fig6.sqlite3", work / "fig6-base.sqlite3"
    # An ordinary git checkout for the CLI to run in; the store is passed with --db.
    repo = work / "fig6-checkout"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    cli_repeats = max(3, scale.query_repeats // 10)
    log = _Log(path)
    growth: dict[str, dict[int, float]] = {}
    base_candidates = 0
    for size in scale.log_sizes:
        log.grow(size)
        if size == scale.log_base:
            base_candidates = log.candidates
            with sqlite3.connect(base_path) as copy:
                log.backup(copy)
        store = SQLiteStore(path)
        for name, query in _queries(store, log.candidates).items():
            growth.setdefault(name, {})[size] = _time_query(query, scale.query_repeats)
        # For contrast in the plot only: what a query that must scan the log costs.
        growth.setdefault(SCAN, {})[size] = _time_query(
            lambda s=store: s._query(  # type: ignore[misc]
                "SELECT COUNT(*) FROM transitions WHERE actor = ?", ("nobody",)
            ),
            max(3, scale.query_repeats // 10),
        )
        store.close()
        growth.setdefault(SHOW, {})[size] = _time_query(
            _show_through_cli(repo, path, f"item-{log.candidates}"), cli_repeats
        )
    big_candidates = log.candidates
    log.close()

    big, base = SQLiteStore(path), SQLiteStore(base_path)
    big_queries = _queries(big, big_candidates)
    base_queries = _queries(base, base_candidates)
    big_queries[SHOW] = _show_through_cli(repo, path, f"item-{big_candidates}")
    base_queries[SHOW] = _show_through_cli(repo, base_path, f"item-{base_candidates}")
    rows = []
    size, small = scale.log_sizes[-1], scale.log_base
    for letter, name in zip("abcdefgh", big_queries, strict=False):
        q_big, q_base = big_queries[name], base_queries[name]
        n = cli_repeats if name == SHOW else scale.query_repeats
        mine, theirs, ratio = paired(
            lambda q=q_big, n=n: _time_query(q, n),
            lambda q=q_base, n=n: _time_query(q, n),
            runs=scale.runs,
        )
        # The CLI pays a process start; its times are in milliseconds.
        scale_to, unit = (1e3, "ms/call") if name == SHOW else (1e6, "us/query")
        rows.append(
            row(
                f"6{letter}",
                f"query `{name}` with {size:,} log rows",
                value=mine * scale_to,
                unit=unit,
                baseline_name=f"the same query with {small:,} log rows",
                baseline=theirs * scale_to,
                ratio=ratio,
                target="<= 2.0 (time)",
                met=ratio <= 2.0,
                key=f"fig6.{_KEYS[name]}",
            )
        )
    big.close()
    base.close()
    return rows, growth
