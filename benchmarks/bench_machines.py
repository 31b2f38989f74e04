"""Figures 3 and 4: mergegate's one shared machine against `transitions` and python-statemachine.

No persistence here: the cost of deciding a move, and the memory a tracked
candidate takes.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from measure import Row, paired, row, timed
from workload import BASE_TIME, PlainModel, Scale, bare_machine, key_for

from mergegate.persistence import SQLiteStore
from mergegate.persistence.codec import dump_time
from mergegate.statemachine import (
    Candidate,
    ConcurrencyConflict,
    Engine,
    Event,
    IllegalTransition,
    State,
)
from mergegate.statemachine._machine import lifecycle
from mergegate.statemachine.extension import Step
from mergegate.statemachine.move import log_entry

__all__ = ["figure_decisions", "figure_memory"]

_spawn = multiprocessing.get_context("spawn")


# Figure 3: decision cost, no persistence.

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
    """Figure 3: one in-memory move, like with like, vs transitions' and python-statemachine's.

    A `transitions` ``trigger()`` checks the move and changes the model's state;
    the Engine's equivalent is its check plus the two records a move produces
    (the log entry and the candidate's next version), everything it does before
    the store writes them. Row 3c compares the check alone with `transitions`'
    own check of a move, ``may_trigger()``.
    """
    engine = Engine(store=None)  # type: ignore[arg-type]  # nothing here touches the store
    n = scale.decisions - scale.decisions % len(_CYCLE)
    events = [_CYCLE[i % len(_CYCLE)] for i in range(n)]
    # The stored view of the candidate before each event, as the Engine reads it.
    steps: list[tuple[Candidate, Event]] = []
    state, seq = State.PENDING, 1
    for event in events:
        steps.append((Candidate(1, key_for("decide"), state, seq, BASE_TIME, BASE_TIME), event))
        state, seq = lifecycle().destination(state, event) or state, seq + 1
    names = [e.value for e in events]
    psm_class = _psm_class()

    table, clock = engine.table, engine.clock

    def decide(candidate: Candidate, event: Event, expected: int) -> Step:
        """The Engine's check (statemachine/_firing.py): the seq, then the compiled step."""
        if expected != candidate.seq:
            raise ConcurrencyConflict(candidate.key, expected, candidate.seq)
        step = table.step(candidate.state, event)
        if step is None:
            raise IllegalTransition(candidate.key, candidate.state, event, ())
        return step

    def move(candidate: Candidate, event: Event) -> Candidate:
        step = decide(candidate, event, candidate.seq)
        entry = log_entry(candidate, step, "mergegate", clock(), None)
        return Candidate(
            candidate.id, candidate.key, step.dest, entry.seq, candidate.submitted_at, entry.at
        )

    def ours() -> float:
        return timed(lambda: [move(c, e) for c, e in steps]) / n

    def check() -> float:
        return timed(lambda: [decide(c, e, c.seq) for c, e in steps]) / n

    def bare() -> float:
        model = PlainModel()
        bare_machine(model)
        trigger = model.trigger  # type: ignore[attr-defined]
        return timed(lambda: [trigger(name) for name in names]) / n

    def may() -> float:
        # may_trigger() does not move the model, so each call sees the state before its event.
        models = []
        machine = bare_machine()
        for c, _ in steps[: len(_CYCLE)]:
            model = PlainModel()
            machine.add_model(model, initial=c.state.value)
            models.append(model.may_trigger)  # type: ignore[attr-defined]
        pairs = [(models[i % len(_CYCLE)], name) for i, name in enumerate(names)]
        return timed(lambda: [may(name) for may, name in pairs]) / n

    def peer() -> float:
        sm = psm_class()
        send = sm.send
        return timed(lambda: [send(name) for name in names]) / n

    mine, theirs, ratio = paired(ours, bare, runs=scale.runs)
    mine2, peers, ratio2 = paired(ours, peer, runs=scale.runs)
    mine3, theirs3, ratio3 = paired(check, may, runs=scale.runs)
    name = "one in-memory move: check + log entry + next candidate record (no store)"
    return [
        row(
            "3a",
            name,
            value=mine * 1e6,
            unit="us/move",
            baseline_name="bare transitions model.trigger() (check + state change)",
            baseline=theirs * 1e6,
            ratio=ratio,
            target="<= 2.0 (time)",
            met=ratio <= 2.0,
            key="fig3.move_vs_transitions_trigger",
        ),
        row(
            "3b",
            name,
            value=mine2 * 1e6,
            unit="us/move",
            baseline_name="python-statemachine sm.send()",
            baseline=peers * 1e6,
            ratio=ratio2,
            target="< 1.0 (time)",
            met=ratio2 < 1.0,
            key="fig3.move_vs_python_statemachine_send",
        ),
        row(
            "3c",
            "the check alone: may this move happen? (the seq, then Table.step)",
            value=mine3 * 1e6,
            unit="us/check",
            baseline_name="bare transitions model.may_trigger()",
            baseline=theirs3 * 1e6,
            ratio=ratio3,
            target="(reported; no target)",
            met=None,
            key="fig3.check_vs_transitions_may_trigger",
        ),
    ]


# Figure 4: memory per tracked candidate.


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


def _rss() -> int:
    """Resident set size of this process in bytes, from ``/proc/self/statm``."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _rss_growth(kind: str, path: str, count: int) -> float:
    """In a fresh process: RSS growth per item while ``count`` items of ``kind`` are held.

    tracemalloc sees only Python's allocations; RSS also counts the allocator's
    arenas and fragmentation, which is what the machine pays.
    """
    import gc

    gc.collect()
    before = _rss()
    held: object
    if kind == "ours":
        store = SQLiteStore(Path(path))
        held = store.candidates()
        store.close()
    elif kind == "add_model":
        machine = bare_machine()
        models = [PlainModel() for _ in range(count)]
        for model in models:
            machine.add_model(model)
        held = (machine, models)
    else:
        held = [bare_machine(PlainModel()) for _ in range(count)]
    gc.collect()
    grown = _rss() - before
    del held
    return grown / count


def _rss_in_child(kind: str, path: Path, count: int) -> float:
    with _spawn.Pool(1) as pool:
        return float(pool.apply(_rss_growth, (kind, str(path), count)))


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
            machine = bare_machine()
            models = [PlainModel() for _ in range(add_model_models)]
            for model in models:
                machine.add_model(model)
            return machine, models

        return _traced(build, add_model_models)

    def machine_each() -> float:
        def build() -> object:
            return [bare_machine(PlainModel()) for _ in range(per_machine_models)]

        return _traced(build, per_machine_models)

    runs = max(1, scale.runs // 2)
    mine, added, ratio = paired(ours, add_model, runs=runs)
    mine2, each, ratio2 = paired(ours, machine_each, runs=runs)
    store.close()
    db = work / "fig4.sqlite3"
    rss_ours, rss_added, rss_ratio = paired(
        lambda: _rss_in_child("ours", db, n),
        lambda: _rss_in_child("add_model", db, add_model_models),
        runs=runs,
    )
    _, rss_each, rss_ratio2 = paired(
        lambda: _rss_in_child("ours", db, n),
        lambda: _rss_in_child("machine_each", db, per_machine_models),
        runs=runs,
    )
    rss_note = (
        f"{n:,} candidates from store.candidates(), RSS growth (/proc/self/statm), "
        "each in a fresh process"
    )
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
            key="fig4.tracemalloc_vs_add_model",
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
            key="fig4.tracemalloc_vs_machine_each",
        ),
        row(
            "4c",
            "resident memory per tracked candidate (Candidate records held)",
            value=rss_ours,
            unit="bytes/candidate",
            baseline_name="transitions: one shared Machine, add_model per model (RSS)",
            baseline=rss_added,
            ratio=rss_ratio,
            target="<= 1024 bytes each",
            met=rss_ours <= 1024,
            note=rss_note,
            key="fig4.rss_vs_add_model",
        ),
        row(
            "4d",
            "resident memory per tracked candidate (Candidate records held)",
            value=rss_ours,
            unit="bytes/candidate",
            baseline_name="transitions: one Machine per model (RSS)",
            baseline=rss_each,
            ratio=rss_ratio2,
            target="<= 1024 bytes each",
            met=rss_ours <= 1024,
            note=rss_note,
            key="fig4.rss_vs_machine_each",
        ),
    ]
