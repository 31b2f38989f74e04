"""The store contract suites' shared steps: identities, times, and a move as the Engine writes it.

Shared by the contract suites (contract_moves.py, contract_blocked.py,
contract_leases.py, contract_ledger.py, contract_reads.py,
contract_controls.py), so that none imports another.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mergegate.statemachine import (
    TABLE,
    BlockedReport,
    Candidate,
    CandidateKey,
    Event,
    Evidence,
    Reason,
    State,
    Store,
    Transition,
)
from mergegate.statemachine.extension import Transaction

__all__ = ["T0", "_CREATE", "_append", "_entry", "_submit", "conflict_report"]

#: The contract's clock starts here.
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

#: The table's creating step: a new candidate's flags and first state.
_CREATE = TABLE.steps(Event.SUBMIT)[0]

SHA = "a" * 40
MAIN = "0" * 40
LEASE = "main"


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


def conflict_report(*paths: str, main: str = MAIN) -> BlockedReport:
    """A ``merge_conflict`` report on ``paths`` against ``main``."""
    return BlockedReport(Reason.MERGE_CONFLICT, main, Evidence(conflicted_paths=paths or ("a",)))


def _key(slug: str = "feat", sha: str = SHA, branch: str | None = None) -> CandidateKey:
    return CandidateKey(slug, branch or slug, sha)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _move(store: Store, candidate: Candidate, event: Event, dest: State, at: datetime) -> Candidate:
    with store.transaction() as tx:
        return _append(tx, candidate, _entry(candidate, event, dest, at))


def _blocked(
    store: Store, key: CandidateKey, follow_up: str, at: datetime = T0
) -> tuple[Candidate, int]:
    """Submit ``key``, take it to ``blocked`` and record the block; returns it and the record id."""
    c = _move(store, _submit(store, key, at), Event.START_APPLY, State.APPLYING, at)
    with store.transaction() as tx:
        c = _append(tx, c, _entry(c, Event.BLOCK, State.BLOCKED, at))
        record = tx.record_block(
            key, conflict_report(), seq=c.seq, at=at, follow_up_slug=follow_up,
            previous_follow_up=None,
        )  # fmt: skip
    return c, record.id


def _raises(kind: type[BaseException], call: Callable[[], object]) -> BaseException:
    """Run ``call``; return what it raised, which must be a ``kind``."""
    try:
        call()
    except kind as err:
        return err
    raise AssertionError(f"{kind.__name__} not raised")
