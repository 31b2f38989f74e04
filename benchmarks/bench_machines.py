"""Figures 3 and 4: mergegate's one shared machine against `transitions` and python-statemachine.

No persistence here: the cost of deciding a move, and the memory a tracked
candidate takes.
"""

from __future__ import annotations

import sqlite3
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from measure import Row, paired, row, timed
from workload import BASE_TIME, PlainModel, Scale, bare_machine, key_for

from mergegate.persistence import SQLiteStore
from mergegate.persistence.codec import dump_time
from mergegate.statemachine import Candidate, Engine, Event, State, lifecycle

__all__ = ["figure_decisions", "figure_memory"]


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
    """Figure 3: the Engine's check of one move vs transitions' and python-statemachine's."""
    engine = Engine(store=None)  # type: ignore[arg-type]  # _check never touches the store
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

    def ours() -> float:
        check = engine._check
        return timed(lambda: [check(c, e, c.seq) for c, e in steps]) / n

    def bare() -> float:
        model = PlainModel()
        bare_machine(model)
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
