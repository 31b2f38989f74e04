"""Figures 1 to 6: mergegate's core against the alternatives a user would pick instead.

Each ``figure_*`` function takes a scratch folder and a :class:`Scale`, and
returns rows (see ``measure.row``). Nothing here asserts a number: a figure that
misses its target is reported, never raised.
"""

from __future__ import annotations

import gc
import itertools
import sqlite3
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
from measure import Row, interleaved, medians, paired, row, timed
from transitions import Machine

from mergegate.followups import FollowUpGuide, FollowUpHook, FollowUps, StateFileResolver
from mergegate.persistence import SQLiteStore
from mergegate.persistence.codec import dump_time
from mergegate.statemachine import (
    BlockedReport,
    Candidate,
    CandidateKey,
    Engine,
    Event,
    Evidence,
    Reason,
    State,
    lifecycle,
)

__all__ = ["FIGURES", "Scale", "figure_history"]

SHA = "0123456789abcdef0123456789abcdef01234567"
MAIN = "fedcba9876543210fedcba9876543210fedcba98"
BASE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
_serial = itertools.count()


@attrs.frozen
class Scale:
    """How much work each figure does; ``quick`` is a smoke run, ``full`` the documented one."""

    runs: int
    persisted: int  # transitions per run of figure 1
    batch: int  # candidates per engine.batch() in figure 2
    decisions: int  # decisions per run of figure 3
    memory_candidates: int
    blocked: int  # candidates blocked per run of figure 5
    log_sizes: tuple[int, ...]  # figure 6, ascending; the ratio is the last over ``log_base``
    log_base: int
    query_repeats: int

    @classmethod
    def quick(cls) -> Scale:
        """Seconds: enough to show that every figure runs."""
        return cls(3, 30, 100, 2_000, 5_000, 3, (1_000, 10_000), 1_000, 10)

    @classmethod
    def full(cls) -> Scale:
        """The documented run: a few minutes on two cores."""
        sizes = (1_000, 10_000, 100_000, 1_000_000)
        return cls(7, 300, 1_000, 40_000, 100_000, 20, sizes, 10_000, 50)


def _slug() -> str:
    return f"bench-{next(_serial)}"


def _key(slug: str) -> CandidateKey:
    return CandidateKey(slug, f"feature/{slug}", SHA)


# -- figure 1: one transition per transaction, against raw sqlite3 ---------------


def _raw_loop(path: Path) -> tuple[Callable[[int], float], sqlite3.Connection]:
    """A hand-written log: one INSERT per BEGIN IMMEDIATE/COMMIT, the store's own settings."""
    SQLiteStore(path).close()  # the real schema, so both sides write the same indexes
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    stamp = dump_time(BASE_TIME)
    cid = conn.execute(
        "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at) "
        "VALUES ('raw', 'feature/raw', ?, 'pending', 0, ?, ?)",
        (SHA, stamp, stamp),
    ).lastrowid
    seq = itertools.count(1)
    sql = (
        "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at) "
        "VALUES (?, ?, 'start_apply', 'pending', 'applying', ?, 'raw', ?)"
    )

    def run(n: int) -> float:
        def loop() -> None:
            for _ in range(n):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(sql, (cid, next(seq), SHA, stamp))
                conn.execute("COMMIT")

        return timed(loop) / n

    return run, conn


def _engine_loop(engine: Engine) -> Callable[[int], float]:
    """The happy path, one Engine call (one transaction) per transition."""

    def run(n: int) -> float:
        slugs = [_slug() for _ in range(max(1, n // 3))]

        def loop() -> None:
            for slug in slugs:
                engine.submit(_key(slug))
                engine.start_apply(slug, owner="bench")
                engine.integrate(slug, main_sha=MAIN)

        return timed(loop) / (3 * len(slugs))

    return run


def _wal_frames(run: Callable[[int], float], conn: sqlite3.Connection, path: Path) -> float:
    """WAL frames (pages) one transition appends, counted with checkpoints held off."""
    conn.execute("PRAGMA wal_autocheckpoint=0")
    try:
        run(30)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        before = path.stat().st_size
        run(150)
        return (path.stat().st_size - before) / (
            150 * (conn.execute("PRAGMA page_size").fetchone()[0] + 24)
        )
    finally:
        conn.execute("PRAGMA wal_autocheckpoint=1000")


def figure_persisted(work: Path, scale: Scale) -> list[Row]:
    """Figure 1: persisted transitions per second, SQLite FULL, vs a raw insert-and-commit loop.

    A second row repeats it with ``synchronous=OFF`` on both sides: what the
    fsync hides, and so what to expect from a disk whose fsync is nearly free.
    """
    path = work / "fig1-engine.sqlite3"
    store = SQLiteStore(path)
    ours = _engine_loop(Engine(store))
    raw, conn = _raw_loop(work / "fig1-raw.sqlite3")
    chunk, chunks = 30, max(2, scale.persisted // 30)
    interleaved(lambda: ours(chunk), lambda: raw(chunk), chunks=2)  # warm-up
    mine, base, ratio = medians(
        [
            interleaved(lambda: ours(chunk), lambda: raw(chunk), chunks=chunks)
            for _ in range(scale.runs)
        ]
    )
    frames = (
        _wal_frames(ours, store._conn, Path(f"{path}-wal")),
        _wal_frames(raw, conn, work / "fig1-raw.sqlite3-wal"),
    )
    for c in (store._conn, conn):
        c.execute("PRAGMA synchronous=OFF")
    n = scale.persisted
    mine_off, base_off, ratio_off = paired(lambda: ours(n), lambda: raw(n), runs=scale.runs)
    store.close()
    conn.close()
    return [
        row(
            "1",
            "persisted transitions/s, one per transaction (SQLite, synchronous=FULL)",
            value=1 / mine,
            unit="transitions/s",
            baseline_name="raw sqlite3 INSERT + COMMIT loop, same settings",
            baseline=1 / base,
            ratio=1 / ratio,
            target=">= 0.8",
            met=1 / ratio >= 0.8,
            note=f"WAL frames per transition: mergegate {frames[0]:.1f}, raw {frames[1]:.1f}",
        ),
        row(
            "1'",
            "the same without the fsync (synchronous=OFF on both sides)",
            value=1 / mine_off,
            unit="transitions/s",
            baseline_name="raw sqlite3 INSERT + COMMIT loop, synchronous=OFF",
            baseline=1 / base_off,
            ratio=1 / ratio_off,
            target="(reported; no target)",
            met=None,
            note="what a disk with a nearly free fsync would show",
        ),
    ]


# -- figure 2: many transitions in one engine.batch() ----------------------------

_TRANSITIONS_STATES = [s.value for s in State]
_TRANSITIONS_TABLE = [
    {"trigger": e.value, "source": (s.value if s else "pending"), "dest": d.value}
    for s, e, d in lifecycle().table.edges()
    if s is not None and s is not d
] + [
    {"trigger": e.value, "source": s.value, "dest": None}
    for s, e, d in lifecycle().table.edges()
    if s is not None and s is d
]


class _Model:
    """A plain model object for ``transitions``; it may not be frozen or slotted."""


def _bare_machine(model: object | None = None) -> Any:
    return Machine(
        model=model,
        states=_TRANSITIONS_STATES,
        transitions=_TRANSITIONS_TABLE,
        initial="pending",
        auto_transitions=False,
    )


def figure_batched(work: Path, scale: Scale) -> list[Row]:
    """Figure 2: a batch of candidates' transitions in one transaction vs in-memory transitions."""
    store = SQLiteStore(work / "fig2.sqlite3")
    engine = Engine(store)
    k = scale.batch

    def ours() -> float:
        slugs = [_slug() for _ in range(k)]

        def run() -> None:
            with engine.batch() as batch:
                for slug in slugs:
                    batch.submit(_key(slug))
                    batch.start_apply(slug, owner="bench")
                    batch.integrate(slug, main_sha=MAIN)

        return timed(run) / (3 * k)

    def base() -> float:
        machine = _bare_machine()

        def run() -> None:
            # Submitting is adding a model in the initial state.
            for _ in range(k):
                model = _Model()
                machine.add_model(model)
                model.trigger("start_apply")
                model.trigger("integrate")

        return timed(run) / (3 * k)

    mine, theirs, ratio = paired(ours, base, runs=scale.runs)
    store.close()
    return [
        row(
            "2",
            f"batched: {k} candidates x 3 transitions in one engine.batch() (SQLite)",
            value=1 / mine,
            unit="transitions/s",
            baseline_name="bare transitions in memory (add_model + 2 triggers)",
            baseline=1 / theirs,
            ratio=1 / ratio,
            target=">= 0.3",
            met=1 / ratio >= 0.3,
        )
    ]


# -- figure 3: decision cost, no persistence ------------------------------------

_CYCLE = (Event.START_APPLY, Event.BLOCK, Event.START_REMEDIATION, Event.RESUME)


def _psm_class() -> type:
    from statemachine import State as S
    from statemachine import StateMachine

    class Lifecycle(StateMachine):  # type: ignore[misc]
        pending = S(initial=True)
        applying = S()
        blocked = S()
        remediating = S()
        retry = S()
        integrated = S(final=True)
        start_apply = pending.to(applying) | retry.to(applying)
        integrate = applying.to(integrated)
        block = (
            applying.to(blocked)
            | blocked.to.itself(internal=True)
            | remediating.to.itself(internal=True)
        )
        interrupt = applying.to(blocked)
        start_remediation = blocked.to(remediating)
        resume = remediating.to(retry)

    return Lifecycle


def figure_decisions(work: Path, scale: Scale) -> list[Row]:
    """Figure 3: the Engine's check of one move vs transitions' and python-statemachine's."""
    engine = Engine(store=None)  # type: ignore[arg-type]  # _check never touches the store
    n = scale.decisions - scale.decisions % len(_CYCLE)
    events = [_CYCLE[i % len(_CYCLE)] for i in range(n)]
    # The stored view of the candidate before each event, as the Engine reads it.
    steps: list[tuple[Candidate, Event]] = []
    state, seq = State.PENDING, 1
    for event in events:
        steps.append((Candidate(1, _key("decide"), state, seq, BASE_TIME, BASE_TIME), event))
        state, seq = lifecycle().destination(state, event) or state, seq + 1
    names = [e.value for e in events]
    psm_class = _psm_class()

    def ours() -> float:
        check = engine._check
        return timed(lambda: [check(c, e, c.seq) for c, e in steps]) / n

    def bare() -> float:
        model = _Model()
        _bare_machine(model)
        trigger = model.trigger  # type: ignore[attr-defined]
        return timed(lambda: [trigger(name) for name in names]) / n

    def peer() -> float:
        sm = psm_class()
        send = sm.send
        return timed(lambda: [send(name) for name in names]) / n

    mine, theirs, ratio = paired(ours, bare, runs=scale.runs)
    mine2, peers, ratio2 = paired(ours, peer, runs=scale.runs)
    return [
        row(
            "3a",
            "decision cost, no persistence (Engine's move check)",
            value=mine * 1e6,
            unit="us/decision",
            baseline_name="bare transitions model.trigger()",
            baseline=theirs * 1e6,
            ratio=ratio,
            target="<= 2.0 (time)",
            met=ratio <= 2.0,
        ),
        row(
            "3b",
            "decision cost, no persistence (Engine's move check)",
            value=mine2 * 1e6,
            unit="us/decision",
            baseline_name="python-statemachine sm.send()",
            baseline=peers * 1e6,
            ratio=ratio2,
            target="< 1.0 (time)",
            met=ratio2 < 1.0,
        ),
    ]


# -- figure 4: memory per tracked candidate -------------------------------------


def _populate_candidates(path: Path, n: int) -> SQLiteStore:
    store = SQLiteStore(path)
    conn = sqlite3.connect(path, isolation_level=None)
    states = [s.value for s in State]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (
                f"item-{i}",
                f"feature/item-{i}",
                f"{i:040x}",
                states[i % len(states)],
                1 + i % 7,
                dump_time(BASE_TIME + timedelta(seconds=i)),
                dump_time(BASE_TIME + timedelta(seconds=i, milliseconds=500)),
            )
            for i in range(n)
        ),
    )
    conn.execute("COMMIT")
    conn.close()
    return store


def _traced(build: Callable[[], object], count: int) -> float:
    """Bytes still allocated per item after ``build()``, while its result is held."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        held = build()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del held
    return (after - before) / count


def figure_memory(work: Path, scale: Scale) -> list[Row]:
    """Figure 4: bytes per candidate held in memory, vs transitions' per-model costs."""
    n = scale.memory_candidates
    store = _populate_candidates(work / "fig4.sqlite3", n)
    per_machine_models = max(100, n // 100)
    add_model_models = max(1_000, n // 10)

    def ours() -> float:
        return _traced(store.candidates, n)

    def add_model() -> float:
        def build() -> object:
            machine = _bare_machine()
            models = [_Model() for _ in range(add_model_models)]
            for model in models:
                machine.add_model(model)
            return machine, models

        return _traced(build, add_model_models)

    def machine_each() -> float:
        def build() -> object:
            return [_bare_machine(_Model()) for _ in range(per_machine_models)]

        return _traced(build, per_machine_models)

    runs = max(1, scale.runs // 2)
    mine, added, ratio = paired(ours, add_model, runs=runs)
    mine2, each, ratio2 = paired(ours, machine_each, runs=runs)
    store.close()
    note = f"{n:,} candidates from store.candidates(), measured with tracemalloc"
    return [
        row(
            "4a",
            "memory per tracked candidate (Candidate records held)",
            value=mine,
            unit="bytes/candidate",
            baseline_name="transitions: one shared Machine, add_model per model",
            baseline=added,
            ratio=ratio,
            target="<= 1024 bytes each",
            met=mine <= 1024,
            note=note,
        ),
        row(
            "4b",
            "memory per tracked candidate (Candidate records held)",
            value=mine2,
            unit="bytes/candidate",
            baseline_name="transitions: one Machine per model",
            baseline=each,
            ratio=ratio2,
            target="<= 1024 bytes each",
            met=mine2 <= 1024,
            note=note,
        ),
    ]


# -- figure 5: the blocked flow --------------------------------------------------

_REPORT = BlockedReport(
    Reason.MERGE_CONFLICT,
    MAIN,
    Evidence(conflicted_paths=("src/b.py", "src/a.py")),
    detail="merge-tree reported conflicts",
)


def figure_blocked(work: Path, scale: Scale) -> list[Row]:
    """Figure 5: first block (evidence, folder, roadmap, guidance) and its replay, per second."""
    store = SQLiteStore(work / "fig5.sqlite3")
    todos = work / "fig5-todos"
    followups = FollowUps(todos)
    engine = Engine(
        store,
        hooks=[FollowUpHook(store, followups)],
        guide=FollowUpGuide(followups.templates),
        resolver=StateFileResolver(todos),
    )
    k = scale.blocked

    blocked: list[str] = []

    def plain_moves(slug: str) -> None:
        engine.submit(_key(slug))
        engine.start_apply(slug, owner="x")
        engine.integrate(slug, main_sha=MAIN)

    def one_run() -> tuple[tuple[float, float], tuple[float, float]]:
        # Each block is timed next to plain transitions of a fresh candidate, in
        # alternating order: the follow-up files a first block writes slow the
        # next fsync down, and both sides must share that.
        first = replay = plain_first = plain_replay = 0.0
        slugs = [_slug() for _ in range(k)]
        blocked.append(slugs[-1])
        for i, slug in enumerate(slugs):
            other = _slug()
            if i % 2:
                plain_first += timed(lambda o=other: plain_moves(o))
            engine.submit(_key(slug))
            engine.start_apply(slug, owner="x")
            first += timed(lambda s=slug: engine.block(s, _REPORT))
            if not i % 2:
                plain_first += timed(lambda o=other: plain_moves(o))
        for i, slug in enumerate(slugs):
            other = _slug()
            if i % 2:
                plain_replay += timed(lambda o=other: plain_moves(o))
            replay += timed(lambda s=slug: engine.block(s, _REPORT))
            if not i % 2:
                plain_replay += timed(lambda o=other: plain_moves(o))
        return (first / k, plain_first / (3 * k)), (replay / k, plain_replay / (3 * k))

    one_run()
    results = [one_run() for _ in range(scale.runs)]
    first, plain, first_ratio = medians([r[0] for r in results])
    replay, plain_replay, replay_ratio = medians([r[1] for r in results])
    # Say so if the flow did less than it should, rather than report a flattering number.
    last = engine.show(blocked[-1])
    complete = (
        last.guidance is not None
        and last.blocked is not None
        and (todos / last.blocked.follow_up_slug / "input.md").is_file()
    )
    store.close()
    return [
        row(
            "5a",
            "first block: evidence + follow-up folder + roadmap entry + guidance",
            value=1 / first,
            unit="blocks/s",
            baseline_name="plain persisted transition (submit, start_apply, integrate)",
            baseline=1 / plain,
            ratio=first_ratio,
            target="(reported; no target)",
            met=None,
            note="ratio is time per first block / time per plain transition"
            + ("" if complete else "; WARNING: the follow-up folder or guidance was missing"),
        ),
        row(
            "5b",
            "replay of the same block: evidence appended + guidance",
            value=1 / replay,
            unit="replays/s",
            baseline_name="plain persisted transition (submit, start_apply, integrate)",
            baseline=1 / plain_replay,
            ratio=replay_ratio,
            target="<= 2.0 (time)",
            met=replay_ratio <= 2.0,
        ),
    ]


# -- figure 6: history queries against log size ----------------------------------


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
        c.executemany("INSERT INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?)", candidates)
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
    big_candidates = log.candidates
    log.close()

    big, base = SQLiteStore(path), SQLiteStore(base_path)
    big_queries = _queries(big, big_candidates)
    base_queries = _queries(base, base_candidates)
    rows = []
    size, small, n = scale.log_sizes[-1], scale.log_base, scale.query_repeats
    for letter, name in zip("abcdefgh", big_queries, strict=False):
        q_big, q_base = big_queries[name], base_queries[name]
        mine, theirs, ratio = paired(
            lambda q=q_big: _time_query(q, n), lambda q=q_base: _time_query(q, n), runs=scale.runs
        )
        rows.append(
            row(
                f"6{letter}",
                f"query `{name}` with {size:,} log rows",
                value=mine * 1e6,
                unit="us/query",
                baseline_name=f"the same query with {small:,} log rows",
                baseline=theirs * 1e6,
                ratio=ratio,
                target="<= 2.0 (time)",
                met=ratio <= 2.0,
            )
        )
    big.close()
    base.close()
    return rows, growth


FIGURES: tuple[Callable[[Path, Scale], list[Row]], ...] = (
    figure_persisted,
    figure_batched,
    figure_decisions,
    figure_memory,
    figure_blocked,
)
