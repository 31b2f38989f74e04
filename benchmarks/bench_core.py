"""Figures 1, 2 and 5: the Engine persisting moves on SQLite, against raw SQLite and in memory.

Each ``figure_*`` function takes a scratch folder and a :class:`~workload.Scale`,
and returns rows (see ``measure.row``). Nothing here asserts a number: a figure
that misses its target is reported, never raised.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable
from pathlib import Path

from measure import Row, interleaved, medians, paired, row, timed
from workload import BASE_TIME, MAIN, SHA, PlainModel, Scale, bare_machine, fresh_slug, key_for

from mergegate.followups import FollowUpGuide, FollowUpHook, FollowUps, StateFileResolver
from mergegate.persistence import SQLiteStore
from mergegate.persistence.codec import dump_time
from mergegate.statemachine import BlockedReport, Engine, Evidence, Reason

__all__ = ["figure_batched", "figure_blocked", "figure_persisted"]


# Figure 1: one transition per transaction, against raw sqlite3.


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
        slugs = [fresh_slug() for _ in range(max(1, n // 3))]

        def loop() -> None:
            for slug in slugs:
                engine.submit(key_for(slug))
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


# Figure 2: many transitions in one engine.batch().


def figure_batched(work: Path, scale: Scale) -> list[Row]:
    """Figure 2: a batch of candidates' transitions in one transaction vs in-memory transitions."""
    store = SQLiteStore(work / "fig2.sqlite3")
    engine = Engine(store)
    k = scale.batch

    def ours() -> float:
        slugs = [fresh_slug() for _ in range(k)]

        def run() -> None:
            with engine.batch() as batch:
                for slug in slugs:
                    batch.submit(key_for(slug))
                    batch.start_apply(slug, owner="bench")
                    batch.integrate(slug, main_sha=MAIN)

        return timed(run) / (3 * k)

    def base() -> float:
        machine = bare_machine()

        def run() -> None:
            # Submitting is adding a model in the initial state.
            for _ in range(k):
                model = PlainModel()
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


# Figure 5: the blocked flow.

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
        engine.submit(key_for(slug))
        engine.start_apply(slug, owner="x")
        engine.integrate(slug, main_sha=MAIN)

    def one_run() -> tuple[tuple[float, float], tuple[float, float]]:
        # Each block is timed next to plain transitions of a fresh candidate, in
        # alternating order: the follow-up files a first block writes slow the
        # next fsync down, and both sides must share that.
        first = replay = plain_first = plain_replay = 0.0
        slugs = [fresh_slug() for _ in range(k)]
        blocked.append(slugs[-1])
        for i, slug in enumerate(slugs):
            other = fresh_slug()
            if i % 2:
                plain_first += timed(lambda o=other: plain_moves(o))
            engine.submit(key_for(slug))
            engine.start_apply(slug, owner="x")
            first += timed(lambda s=slug: engine.block(s, _REPORT))
            if not i % 2:
                plain_first += timed(lambda o=other: plain_moves(o))
        for i, slug in enumerate(slugs):
            other = fresh_slug()
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
