"""A stateful hypothesis harness that any :class:`~..applier.Applier` can be plugged into.

Subclass :class:`ApplierStateMachine`, supply an Engine, an Applier and a way
to make candidates, and expose ``TestCase``::

    class GitMachine(ApplierStateMachine):
        def make_engine(self) -> Engine:
            return Engine(SQLiteStore(self.dir / "db.sqlite3"))

        def make_applier(self) -> Applier:
            return GitApplier(self.repo)

        def new_candidate(self, data: st.DataObject) -> CandidateKey:
            ...  # make a branch in the repository, return its identity

    TestGit = GitMachine.TestCase

The rules submit candidates, apply the next one through the Engine, and
remediate and resume blocked ones. One rule stalls the mover at one of its
heartbeats, past its lease, while another Engine (a later clock) recovers under
:meth:`~..applier.Applier.hold_main`: recovery either refuses (the mover holds
``main``) and the apply then ends normally, or it blocks the candidate and the
mover's next heartbeat fails, leaving ``main`` where it was. After every step
the harness checks that ``main`` moved only when the applier reported
:class:`~..applier.Integrated`, to the sha it reported, and that the Engine's
log replays cleanly. It assumes
that nothing but the applier moves ``main`` while an apply runs; a rule of the
subclass that moves ``main`` between applies calls :meth:`observe_main`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import attrs
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ..applier import AlreadyIntegrated, Applier, ApplyResult, Blocked, HeldMain, Integrated
from ..engine import Engine
from ..errors import LeaseHeld, MoveInFlight
from ..records import CandidateKey, Outcome, Reason
from ..states import Event, State

__all__ = ["ApplierStateMachine", "RecordingApplier"]


@attrs.define
class RecordingApplier:
    """Wraps an applier and keeps the result of its last ``apply``."""

    inner: Applier
    last: ApplyResult | None = None
    calls: int = 0
    stall_at: int | None = None
    stall: Callable[[], None] | None = None

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        """Delegate to the wrapped applier and remember what it returned.

        With ``stall`` and ``stall_at`` set, ``stall()`` runs right before the
        ``stall_at``-th heartbeat: the mover is paused there.
        """
        self.calls += 1
        beats = 0

        def beat() -> None:
            nonlocal beats
            beats += 1
            if beats == self.stall_at and self.stall is not None:
                self.stall()
            heartbeat()

        self.last = self.inner.apply(key, beat)
        return self.last

    def hold_main(self, *, break_stale: bool = False) -> AbstractContextManager[HeldMain]:
        """Delegate to the wrapped applier."""
        return self.inner.hold_main(break_stale=break_stale)

    def main_sha(self) -> str:
        """Delegate to the wrapped applier."""
        return self.inner.main_sha()

    def take(self) -> ApplyResult | None:
        """The last result (``None`` if there was no apply since), and forget it."""
        last, self.last = self.last, None
        return last


class ApplierStateMachine(RuleBasedStateMachine):
    """Drives an Engine and an Applier at random; checks ``main`` and the log after each step.

    Subclasses implement :meth:`make_engine`, :meth:`make_applier` and
    :meth:`new_candidate`; they may override :meth:`remediate`,
    :meth:`check_integrated` and :meth:`close`.
    """

    owner = "mergegate-harness"

    def __init__(self) -> None:
        super().__init__()
        self.engine = self.make_engine()
        self.applier = RecordingApplier(self.make_applier())
        self.main = self.applier.main_sha()
        self.outcomes: list[Outcome] = []

    # -- what a subclass supplies --------------------------------------------

    def make_engine(self) -> Engine:
        """A fresh Engine on an empty store, for one run of the machine."""
        raise NotImplementedError

    def make_applier(self) -> Applier:
        """The applier under test, on a repository whose ``main`` this run owns."""
        raise NotImplementedError

    def new_candidate(self, data: st.DataObject) -> CandidateKey:
        """Make a new candidate (a branch at a commit) and return its identity.

        Its slug must not be held by another unintegrated candidate.
        """
        raise NotImplementedError

    def remediate(self, key: CandidateKey, data: st.DataObject) -> str | None:
        """Fix a blocked candidate; return its new sha, or ``None`` to retry it as it is."""
        return None

    def check_integrated(self, key: CandidateKey, result: Integrated) -> None:
        """Extra checks on an integration, e.g. the merge commit's parents. Raise to fail."""

    def close(self) -> None:
        """Release what the subclass opened; the store is closed by the harness."""

    # -- rules ----------------------------------------------------------------

    def observe_main(self) -> None:
        """Accept ``main``'s current sha; call after moving ``main`` outside an apply."""
        self.main = self.applier.main_sha()

    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        """Submit a new candidate; it starts ``pending``."""
        key = self.new_candidate(data)
        outcome = self.engine.submit(key)
        assert outcome.state is State.PENDING, outcome
        self.outcomes.append(outcome)

    @rule()
    def apply_next(self) -> None:
        """Apply the next candidate; ``main`` moves exactly when the applier integrated."""
        before = self.applier.main_sha()
        assert before == self.main, f"main moved outside an apply: {self.main} -> {before}"
        self.applier.take()
        outcome = self.engine.apply_next(self.applier, owner=self.owner)
        result = self.applier.take()
        after = self.applier.main_sha()
        self.main = after
        if outcome is None:
            assert result is None
            assert after == before
            return
        self.outcomes.append(outcome)
        assert outcome.transition is not None
        key = outcome.candidate.key
        match result:
            case Integrated():
                assert after == result.main_sha != before, (result, before, after)
                assert result.previous_main == before, (result, before)
                assert outcome.state is State.INTEGRATED
                assert outcome.transition.event is Event.INTEGRATE
                self.check_integrated(key, result)
            case AlreadyIntegrated():
                assert after == before == result.main_sha, (result, before, after)
                assert outcome.state is State.INTEGRATED
            case Blocked(report):
                assert after == before, f"main moved on a blocked apply: {report}"
                assert outcome.state is State.BLOCKED
                assert outcome.blocked is not None
                assert outcome.blocked.reason is report.reason
                if report.reason is not Reason.PRECONDITION_FAILED:
                    assert report.main_sha == before, (report, before)
            case _:
                raise AssertionError(f"the applier returned {result!r} for {key}")

    def _blocked(self) -> list[str]:
        return [c.key.slug for c in self.engine.store.candidates(State.BLOCKED)]

    @rule(data=st.data())
    def remediate_and_resume(self, data: st.DataObject) -> None:
        """Remediate a blocked candidate and resume it to ``retry``; a no-op if none is blocked."""
        # A no-op instead of a precondition: a precondition that is often false
        # makes hypothesis discard whole runs as invalid.
        blocked = sorted(self._blocked())
        if not blocked:
            return
        slug = data.draw(st.sampled_from(blocked), label="blocked slug")
        started = self.engine.start_remediation(slug)
        new_sha = self.remediate(started.candidate.key, data)
        self.observe_main()
        outcome = self.engine.resume(slug, new_sha=new_sha, force_reason="harness remediation")
        assert outcome.state is State.RETRY
        assert outcome.candidate.key.sha == (new_sha or started.candidate.key.sha)
        self.outcomes.append(outcome)

    @rule(at=st.integers(1, 6))
    def stall_past_the_lease(self, at: int) -> None:
        """Pause the mover at heartbeat ``at`` past its lease while another process recovers.

        Either recovery refuses (the mover holds ``main``) and the apply ends as
        usual, or it blocks the candidate and the apply fails with LeaseHeld,
        leaving ``main`` untouched. Never both, and ``main`` never moves for a
        candidate that recovery blocked.
        """
        before = self.applier.main_sha()
        assert before == self.main
        late = attrs.evolve(self.engine, clock=self._late_clock)
        seen: list[str] = []

        def recover_meanwhile() -> None:
            try:
                with self.applier.hold_main() as held:
                    outcomes = late.recover(held.main_sha)
            except MoveInFlight:
                seen.append("refused")
                return
            seen.extend(o.state.value for o in outcomes)

        self.applier.stall_at, self.applier.stall = at, recover_meanwhile
        try:
            outcome = self.engine.apply_next(self.applier, owner=self.owner)
        except LeaseHeld:
            event("stall: recovery blocked, the mover's heartbeat failed")
            assert seen == [State.BLOCKED.value], seen
            assert self.applier.main_sha() == before, "main moved after the lease was lost"
            assert not self._applying()
            return
        finally:
            self.applier.stall_at, self.applier.stall = None, None
            self.applier.take()
            self.main = self.applier.main_sha()
        if outcome is None:
            assert self.main == before
            return
        self.outcomes.append(outcome)
        event(f"stall: recovery {'refused' if seen else 'not reached'}, {outcome.state.value}")
        assert seen in ([], ["refused"]), seen
        if outcome.state is State.INTEGRATED and self.main != before:
            assert outcome.transition is not None
            assert outcome.transition.reason == f"main={self.main}"
        else:
            assert self.main == before, outcome

    def _late_clock(self) -> datetime:
        return self.engine.clock() + self.engine.lease_ttl + timedelta(seconds=1)

    def _applying(self) -> list[str]:
        return [c.key.slug for c in self.engine.store.candidates(State.APPLYING)]

    @rule()
    def recover(self) -> None:
        """Recovery finds nothing to interrupt: every apply released its lease."""
        assert self.engine.recover(self.main) == []

    # -- invariants -------------------------------------------------------------

    @invariant()
    def main_only_moves_in_apply(self) -> None:
        """``main`` is where the last observation left it."""
        assert self.applier.main_sha() == self.main

    @invariant()
    def log_replays_cleanly(self) -> None:
        """Every log folds to its candidate's stored state, with no gap in the seqs."""
        assert self.engine.verify() == []
        for candidate in self.engine.store.candidates():
            seqs = [t.seq for t in self.engine.store.history(candidate.id)]
            assert seqs == list(range(1, candidate.seq + 1)), (candidate, seqs)
            assert candidate.state is not State.APPLYING, candidate
        assert self.engine.store.integrity_problems() == []

    def teardown(self) -> None:
        """Close the subclass's resources, then the store."""
        try:
            self.close()
        finally:
            self.engine.store.close()
