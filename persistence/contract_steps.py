"""How the store contracts write a move: an entry and its step, as the Engine does.

Shared by the contract suites (contract.py, contract_controls.py), so that
neither imports the other.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mergegate.statemachine import (
    TABLE,
    Candidate,
    CandidateKey,
    Event,
    State,
    Store,
    Transition,
)
from mergegate.statemachine.extension import Transaction

__all__ = ["T0", "_CREATE", "_append", "_entry", "_submit"]

#: The contract's clock starts here.
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

#: The table's creating step: a new candidate's flags and first state.
_CREATE = TABLE.steps(Event.SUBMIT)[0]


def _entry(
    candidate: Candidate,
    event: Event,
    dest: State,
    at: datetime,
    *,
    sha: str | None = None,
    idempotency_key: str | None = None,
    reason: str | None = None,
) -> Transition:
    """The next log entry of ``candidate``, as the Engine would build it."""
    return Transition(
        candidate_id=candidate.id,
        seq=candidate.seq + 1,
        event=event,
        source=None if event is Event.SUBMIT else candidate.state,
        dest=dest,
        sha=sha or candidate.key.sha,
        actor="contract",
        at=at,
        reason=reason,
        idempotency_key=idempotency_key,
    )


#: The contract's clock starts here.
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

#: The table's creating step: a new candidate's flags and first state.
_CREATE = TABLE.steps(Event.SUBMIT)[0]


def _append(tx: Transaction, candidate: Candidate, entry: Transition) -> Candidate:
    """Append ``entry`` with the table's step for it, as the Engine does."""
    step = TABLE.step(entry.source, entry.event)
    assert step is not None, (entry.source, entry.event)
    return tx.append(candidate, entry, step)


def _submit(store: Store, key: CandidateKey, at: datetime = T0) -> Candidate:
    """Insert ``key`` and log its submit, in one transaction."""
    with store.transaction() as tx:
        new = tx.insert_candidate(key, at, _CREATE)
        return _append(tx, new, _entry(new, Event.SUBMIT, State.PENDING, at))
