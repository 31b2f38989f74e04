"""Recompute state by folding a log, and check a store against the fold."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ._machine import LifecycleMachine, lifecycle
from .records import Candidate, Transition
from .states import State

__all__ = ["Violation", "fold", "verify_log"]


@attrs.frozen
class Violation:
    """One way a stored log breaks the lifecycle."""

    candidate_id: int
    seq: int | None
    problem: str

    def __str__(self) -> str:
        at = f" seq {self.seq}" if self.seq is not None else ""
        return f"candidate {self.candidate_id}{at}: {self.problem}"


def fold(
    entries: Iterable[Transition], machine: LifecycleMachine | None = None
) -> tuple[State | None, str | None, list[Violation]]:
    """Replay one candidate's entries; return its state, its sha, and any violations."""
    machine = machine or lifecycle()
    state: State | None = None
    sha: str | None = None
    problems: list[Violation] = []
    expected_seq = 1
    for entry in entries:
        where = (entry.candidate_id, entry.seq)
        if entry.seq != expected_seq:
            problems.append(Violation(*where, f"gap: expected seq {expected_seq}"))
        expected_seq = entry.seq + 1
        if entry.source is not state:
            problems.append(
                Violation(*where, f"entry says it left {entry.source}, but the fold is in {state}")
            )
        dest = machine.destination(state, entry.event)
        if dest is None:
            problems.append(Violation(*where, f"{entry.event} is not allowed from {state}"))
        elif dest is not entry.dest:
            problems.append(
                Violation(*where, f"{entry.event} leads to {dest}, log says {entry.dest}")
            )
        state, sha = entry.dest, entry.sha
    return state, sha, problems


def verify_log(candidate: Candidate, entries: Iterable[Transition]) -> list[Violation]:
    """Fold ``entries`` and compare the result with the stored ``candidate``."""
    entries = list(entries)
    state, sha, problems = fold(entries)
    if state is not candidate.state:
        problems.append(
            Violation(candidate.id, None, f"stored state {candidate.state} != folded {state}")
        )
    if sha != candidate.key.sha:
        problems.append(Violation(candidate.id, None, f"stored sha {candidate.key.sha} != {sha}"))
    if entries and entries[-1].seq != candidate.seq:
        problems.append(
            Violation(candidate.id, None, f"stored seq {candidate.seq} != last {entries[-1].seq}")
        )
    return problems
