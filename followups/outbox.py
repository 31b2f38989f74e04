"""The follow-up outbox: materialize what the blocking transactions enqueued.

The Engine commits the block and an outbox row together; the follow-up is
written after that commit, by the blocked hook straight away or by
:func:`drain` later (after a crash, or from ``mergegate followups sync``).
Every step is idempotent, so two drains, or a drain racing the hook, end with
one folder, one roadmap entry and the row marked done.
"""

from __future__ import annotations

import attrs

from mergegate.statemachine import (
    TABLE,
    CandidateKey,
    Effect,
    Event,
    FollowUpState,
    MergegateError,
    Outcome,
    Store,
)
from mergegate.statemachine.records import FollowUpJob

from .materialize import FollowUps
from .text import one_line

__all__ = ["DrainResult", "FollowUpHook", "drain"]


@attrs.frozen
class DrainResult:
    """What a drain did: the follow-ups it created or reused, and those that failed, with why."""

    created: tuple[str, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()


def _describe(err: BaseException) -> str:
    return one_line(f"{type(err).__name__}: {err}", limit=300)


def _process(store: Store, followups: FollowUps, job: FollowUpJob) -> str | None:
    """Materialize one job and record the result; return the error, or ``None`` on success."""
    record = store.blocked_record_by_id(job.blocked_id)
    occurrences = store.occurrences(job.blocked_id)
    if record is None or not occurrences:
        error = f"blocked outcome {job.blocked_id} or its evidence is missing from the store"
        store.finish_follow_up(job.follow_up_slug, FollowUpState.FAILED, error)
        return error
    try:
        followups.materialize(record, occurrences[-1].report)
    except (OSError, MergegateError) as err:
        # Expected: a read-only, full or missing todos folder, a malformed roadmap,
        # a folder held by another candidate. The evidence is committed already;
        # record why, and let the guidance give the manual commands.
        error = _describe(err)
        store.finish_follow_up(job.follow_up_slug, FollowUpState.FAILED, error)
        return error
    store.finish_follow_up(job.follow_up_slug, FollowUpState.CREATED, None)
    return None


def drain(store: Store, followups: FollowUps) -> DrainResult:
    """Materialize every pending outbox row, oldest first, and record each result in the store.

    Expected failures (OSError, a malformed roadmap, a conflicting folder) are
    recorded as ``FollowUpState.FAILED`` and reported, never raised; the row
    stays for the next drain. Safe to run twice, or in two processes at once.
    """
    created: list[str] = []
    failed: list[tuple[str, str]] = []
    for job in store.follow_up_jobs():
        error = _process(store, followups, job)
        if error is None:
            created.append(job.follow_up_slug)
        else:
            failed.append((job.follow_up_slug, error))
    return DrainResult(tuple(created), tuple(failed))


# The seq of a candidate integrated on its first apply; a block adds entries to any path.
_DIRECT_INTEGRATION = 3

# Every event whose rule records a block (``block``, and ``interrupt`` from recovery),
# read off the table: a follow-up is delivered whichever of them created it.
_BLOCKING_EVENTS = frozenset(
    event
    for source, event, _dest in TABLE.edges()
    if (rule := TABLE.rule(source, event)) is not None and Effect.RECORD_BLOCK in rule.effects
)


@attrs.define
class FollowUpHook:
    """Implements ``Hook``: after a blocking commit, materializes the follow-up of the outcome;
    after an integration, hands the candidate's follow-up to the scaffold's ``deliver``.

    It acts when the outcome is blocked and its follow-up has a queued job: not
    created yet, or re-queued by a later occurrence. Materializing is idempotent,
    so a replay touches nothing on disk unless the folder or the roadmap entry
    was removed (as the folder-removed and roadmap-gone rules do when done).
    Delivery concerns every follow-up of the integrated candidate (each sha it
    was blocked at); an error it raises is isolated into ``Outcome.hook_errors``.
    """

    store: Store
    followups: FollowUps

    def after_commit(self, outcome: Outcome) -> Outcome:
        """``outcome``, with its blocked record re-read once the follow-up is materialized.

        Never raises for expected failures: they are recorded on the record as
        ``FAILED``, with the error, and the outcome carries that record.
        """
        if outcome.transition is not None and outcome.transition.event is Event.INTEGRATE:
            self._deliver(outcome)
            return outcome
        record = outcome.blocked
        if record is None:
            return outcome
        if record.follow_up_state is FollowUpState.CREATED and record.occurrences == 1:
            return outcome
        # A later occurrence re-queues the follow-up (the gate resets): bring back a
        # folder or roadmap entry removed as "done"; one still there is left as it is.
        jobs = [j for j in self.store.follow_up_jobs() if j.blocked_id == record.id]
        if not jobs:
            return outcome
        for job in jobs:
            _process(self.store, self.followups, job)
        refreshed = self.store.blocked_record(record.key)
        return outcome if refreshed is None else attrs.evolve(outcome, blocked=refreshed)

    def _deliver(self, outcome: Outcome) -> None:
        # Every sha this candidate was blocked at: a resume with a new sha leaves the
        # follow-up under the old identity, and that one is delivered too.
        key = outcome.candidate.key
        if outcome.candidate.seq <= _DIRECT_INTEGRATION:
            return  # submit, start_apply, integrate: never blocked, so no query at all
        history = self.store.history(outcome.candidate.id)
        for sha in sorted({t.sha for t in history if t.event in _BLOCKING_EVENTS}):
            record = self.store.blocked_record(CandidateKey(key.slug, key.branch, sha))
            if record is not None and record.follow_up_state is FollowUpState.CREATED:
                self.followups.deliver(record)
