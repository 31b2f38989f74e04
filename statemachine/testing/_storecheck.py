"""The store after each step: it holds what the calls returned, and its log replays cleanly.

A hook that moved a candidate behind the caller's back, or failed after the
commit, shows as a returned outcome that is not the stored state; a write that
bypassed the log shows as a log that does not fold to the stored state.
"""

from __future__ import annotations

from ..engine import Engine
from ..records import Outcome
from ..states import State
from ..store import Store
from ._failure import expect

__all__ = ["check_log", "check_outcomes"]


def check_outcomes(store: Store, outcomes: list[Outcome]) -> None:
    """Raise :class:`HarnessFailure` if an outcome carries a hook error, or if the last
    outcome of a candidate is not what ``store`` holds (its history is in the facts)."""
    latest: dict[int, Outcome] = {o.candidate.id: o for o in outcomes}
    for outcome in outcomes:
        expect(
            not outcome.hook_errors,
            "outcomes_match_store",
            "a hook failed after the commit",
            candidate=outcome.candidate.key,
            hook_errors=outcome.hook_errors,
        )
    for candidate_id, outcome in latest.items():
        stored = store.candidate_by_id(candidate_id)
        returned = (outcome.state, outcome.candidate.seq, outcome.candidate.key)
        actual = None if stored is None else (stored.state, stored.seq, stored.key)
        expect(
            returned == actual,
            "outcomes_match_store",
            "the returned outcome is not the stored state: something moved the candidate "
            "after the call (a hook making an unrequested move?)",
            candidate=outcome.candidate.key,
            expected=returned,
            actual=actual,
            history=None if stored is None else _history(store, stored.id),
        )


def _history(store: Store, candidate_id: int) -> list[str]:
    return [
        f"{t.seq}:{t.source.value if t.source else '-'}-{t.event.value}->{t.dest.value}"
        for t in store.history(candidate_id)
    ]


def check_log(engine: Engine) -> None:
    """Raise :class:`HarnessFailure` unless every log folds to its candidate's stored
    state with seqs 1..n, no candidate is left ``applying``, and the store reports no
    integrity problem."""
    violations = engine.verify()
    expect(
        violations == [],
        "log_replays_cleanly",
        "the log does not replay to the stored state (a write bypassed the log?)",
        violations=violations,
    )
    for candidate in engine.store.candidates():
        seqs = [t.seq for t in engine.store.history(candidate.id)]
        expect(
            seqs == list(range(1, candidate.seq + 1)),
            "log_replays_cleanly",
            "the log has a gap or a duplicate seq",
            candidate=candidate.key,
            expected=list(range(1, candidate.seq + 1)),
            actual=seqs,
        )
        expect(
            candidate.state is not State.APPLYING,
            "log_replays_cleanly",
            "a candidate was left 'applying' after a step",
            candidate=candidate.key,
            actual=candidate.state,
        )
    problems = engine.store.integrity_problems()
    expect(
        problems == [],
        "log_replays_cleanly",
        "the store reports integrity problems",
        problems=problems,
    )
