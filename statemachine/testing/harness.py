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

Every check raises :class:`HarnessFailure` (an AssertionError) whose message
names the check and carries its data: the violations, the candidate, the
expected and the actual state. The checks do not use ``assert``, so they hold
under ``python -O`` and read the same in any test runner.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ..applier import Applier, Integrated
from ..engine import Engine
from ..errors import LeaseHeld, MoveInFlight
from ..records import CandidateKey, Outcome
from ..states import State
from ._applycheck import check_apply
from ._failure import HarnessFailure, expect
from ._recording import RecordingApplier
from ._storecheck import check_log, check_outcomes

__all__ = ["SMOKE", "ApplierStateMachine", "HarnessFailure", "RecordingApplier", "expect"]

#: Settings for a smoke check: few, short runs. Assign it to ``YourMachine.TestCase.settings``
#: (docs/testing-harness.md has the figures behind it).
SMOKE = settings(
    max_examples=20,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class ApplierStateMachine(RuleBasedStateMachine):
    """Drives an Engine and an Applier at random; checks ``main``, the log and every outcome.

    Subclasses implement :meth:`make_engine`, :meth:`make_applier` and
    :meth:`new_candidate`; they may override :meth:`remediate`,
    :meth:`check_integrated` and :meth:`close`, and add rules (which pass each
    outcome they get to :meth:`record`) and invariants (which call :func:`expect`).
    """

    owner = "mergegate-harness"

    def __init__(self) -> None:
        super().__init__()
        self.engine = self.make_engine()
        self.applier = RecordingApplier(self.make_applier())
        self.main = self.applier.main_sha()
        self.outcomes: list[Outcome] = []
        # The outcomes returned since the last invariant check, compared with the store.
        self._unchecked: list[Outcome] = []

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

    # -- helpers for subclasses ------------------------------------------------

    def observe_main(self) -> None:
        """Accept ``main``'s current sha; call after moving ``main`` outside an apply."""
        self.main = self.applier.main_sha()

    def record(self, outcome: Outcome) -> Outcome:
        """Keep ``outcome`` for the checks: the next invariant compares it with the store."""
        self.outcomes.append(outcome)
        self._unchecked.append(outcome)
        return outcome

    # -- rules ----------------------------------------------------------------

    @rule(data=st.data())
    def submit(self, data: st.DataObject) -> None:
        """Submit a new candidate; it starts ``pending``."""
        key = self.new_candidate(data)
        outcome = self.record(self.engine.submit(key))
        expect(
            outcome.state is State.PENDING,
            "submit",
            "a new candidate is not pending",
            candidate=key,
            expected=State.PENDING,
            actual=outcome.state,
        )

    @rule()
    def apply_next(self) -> None:
        """Apply the next candidate; ``main`` moves exactly when the applier integrated."""
        before = self.applier.main_sha()
        expect(
            before == self.main,
            "apply_next",
            "main moved outside an apply",
            expected=self.main,
            actual=before,
        )
        self.applier.take()
        outcome = self.engine.apply_next(self.applier, owner=self.owner)
        result = self.applier.take()
        after = self.applier.main_sha()
        self.main = after
        if outcome is None:
            expect(
                result is None and after == before,
                "apply_next",
                "nothing was queued, yet the applier ran or main moved",
                result=result,
                main_before=before,
                main_after=after,
            )
            return
        self.record(outcome)
        check_apply(outcome, result, before, after, self.check_integrated)

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
        started = self.record(self.engine.start_remediation(slug))
        new_sha = self.remediate(started.candidate.key, data)
        self.observe_main()
        outcome = self.engine.resume(slug, new_sha=new_sha, force_reason="harness remediation")
        self.record(outcome)
        expected_sha = new_sha or started.candidate.key.sha
        expect(
            outcome.state is State.RETRY and outcome.candidate.key.sha == expected_sha,
            "remediate_and_resume",
            "a resumed candidate must be 'retry' at the remediated sha",
            candidate=outcome.candidate.key,
            expected=(State.RETRY, expected_sha),
            actual=(outcome.state, outcome.candidate.key.sha),
        )

    @rule(at=st.integers(1, 6))
    def stall_past_the_lease(self, at: int) -> None:
        """Pause the mover at heartbeat ``at`` past its lease while another process recovers.

        Either recovery refuses (the mover holds ``main``) and the apply ends as
        usual, or it settles the candidate (requeued, or blocked once it keeps
        interrupting its integrator) and the apply fails with LeaseHeld, leaving
        ``main`` untouched. Never both, and ``main`` never moves for a candidate
        that recovery settled.
        """
        check = "stall_past_the_lease"
        before = self.applier.main_sha()
        expect(
            before == self.main,
            check,
            "main moved outside an apply",
            expected=self.main,
            actual=before,
        )
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
            event("stall: recovery settled it, the mover's heartbeat failed")
            after = self.applier.main_sha()
            settled = seen in ([State.PENDING.value], [State.BLOCKED.value])
            expect(
                settled and after == before and not self._applying(),
                check,
                "after the lease was lost, recovery must have requeued or blocked the candidate "
                "and main must not have moved",
                recovery=seen,
                main_before=before,
                main_after=after,
                applying=self._applying(),
            )
            return
        finally:
            self.applier.stall_at, self.applier.stall = None, None
            self.applier.take()
            self.main = self.applier.main_sha()
        if outcome is None:
            expect(
                self.main == before,
                check,
                "main moved with nothing to apply",
                main_before=before,
                main_after=self.main,
            )
            return
        self.record(outcome)
        event(f"stall: recovery {'refused' if seen else 'not reached'}, {outcome.state.value}")
        expect(
            seen in ([], ["refused"]),
            check,
            "recovery decided while the mover still finished its apply",
            recovery=seen,
            candidate=outcome.candidate.key,
            state=outcome.state,
        )
        if outcome.state is State.INTEGRATED and self.main != before:
            named = None if outcome.transition is None else outcome.transition.main_sha
            expect(
                named == self.main,
                check,
                "the integration does not name the main it made",
                expected=self.main,
                actual=named,
            )
        else:
            expect(
                self.main == before,
                check,
                "main moved on an apply that did not integrate",
                candidate=outcome.candidate.key,
                state=outcome.state,
                main_before=before,
                main_after=self.main,
            )

    def _late_clock(self) -> datetime:
        return self.engine.clock() + self.engine.lease_ttl + timedelta(seconds=1)

    def _applying(self) -> list[str]:
        return [c.key.slug for c in self.engine.store.candidates(State.APPLYING)]

    @rule()
    def recover(self) -> None:
        """Recovery finds nothing to interrupt: every apply released its lease."""
        interrupted = self.engine.recover(self.main)
        expect(
            interrupted == [],
            "recover",
            "recovery interrupted an apply: a lease was left behind",
            interrupted=interrupted,
        )

    # -- invariants -------------------------------------------------------------

    @invariant()
    def main_only_moves_in_apply(self) -> None:
        """``main`` is where the last observation left it."""
        actual = self.applier.main_sha()
        expect(
            actual == self.main,
            "main_only_moves_in_apply",
            "main moved outside an apply",
            expected=self.main,
            actual=actual,
        )

    @invariant()
    def outcomes_match_store(self) -> None:
        """Each returned outcome is what the store holds: no hook moved a candidate behind it,
        and no hook failed."""
        unchecked, self._unchecked = self._unchecked, []
        check_outcomes(self.engine.store, unchecked)

    @invariant()
    def log_replays_cleanly(self) -> None:
        """Every log folds to its candidate's stored state, with no gap in the seqs."""
        check_log(self.engine)

    def teardown(self) -> None:
        """Close the subclass's resources, then the store."""
        try:
            self.close()
        finally:
            self.engine.store.close()
