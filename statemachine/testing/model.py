"""A stateful hypothesis test of the Engine against a plain in-memory model.

Subclass :class:`EngineModelMachine`, implement :meth:`make_store` to return a
fresh store, and expose ``TestCase``::

    class SQLiteMachine(EngineModelMachine):
        def make_store(self):
            return SQLiteStore(tmp_dir() / "db.sqlite3")

    TestSQLite = SQLiteMachine.TestCase

The model encodes the lifecycle independently of :data:`~..table.TABLE`, so
a wrong table row is caught, not mirrored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from .._interruptions import MAX_INTERRUPTIONS
from ..engine import Engine
from ..errors import (
    CandidateNotFound,
    DuplicateCandidate,
    IllegalTransition,
    LeaseHeld,
)
from ..records import BlockedReport, CandidateKey
from ..states import Event, State
from ..store import Store
from ._failure import expect
from .strategies import blocked_reports

__all__ = ["LEFT_OUT", "EngineModelMachine", "StepClock"]

# The lifecycle as the issue states it, written out by hand on purpose.
_SPEC: dict[tuple[str, str], str] = {
    ("pending", "start_apply"): "applying",
    ("retry", "start_apply"): "applying",
    ("applying", "integrate"): "integrated",
    ("applying", "block"): "blocked",
    ("blocked", "block"): "blocked",
    ("remediating", "block"): "remediating",
    ("applying", "interrupt"): "blocked",
    ("applying", "requeue"): "pending",
    ("blocked", "start_remediation"): "remediating",
    ("remediating", "resume"): "retry",
    ("pending", "supersede"): "pending",
    ("retry", "supersede"): "retry",
    ("pending", "withdraw"): "withdrawn",
    ("blocked", "withdraw"): "withdrawn",
    ("remediating", "withdraw"): "withdrawn",
    ("retry", "withdraw"): "withdrawn",
}
#: What the model leaves out on purpose: the chain lease (``hold_lease`` and the
#: ``start_apply`` calls that join it), driven through real git repositories by
#: tests/apply/test_chain.py and tests/reliability instead. Every edge of the
#: table is in ``_SPEC`` (a test compares the two).
LEFT_OUT = ("chain leases: Engine.hold_lease, a start_apply joining it, chain recovery",)
#: States in which a candidate no longer holds its slug.
_DONE = frozenset({"integrated", "withdrawn"})
_SLUGS = st.sampled_from(["alpha", "beta"])
# Two full ids share their first 7 hex digits, as follow-up slugs do.
_SHAS = st.sampled_from(
    [
        f"{p}{d * 33}"
        for p, d in (("aaaaaaa", "1"), ("aaaaaaa", "2"), ("bbbbbbb", "3"), ("ccccccc", "4"))
    ]
)
_BRANCHES = st.sampled_from(["work", "feature/x"])
_TTL = timedelta(minutes=5)


class StepClock:
    """A deterministic clock: one microsecond per reading, jumps on demand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


@attrs.define
class _Model:
    key: CandidateKey
    state: str
    seq: int
    #: Applies in a row that recovery settled (any other move but a start ends the run).
    interruptions: int = 0


class EngineModelMachine(RuleBasedStateMachine):
    """Drives a real Engine on a real store and checks it against ``_SPEC``."""

    def make_store(self) -> Store:
        """A fresh, empty store; subclasses must implement it."""
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.clock = StepClock()
        self.store = self.make_store()
        self.engine = Engine(self.store, clock=self.clock, lease_ttl=_TTL)
        self.model: dict[str, _Model] = {}
        self.lease_holder: str | None = None
        self.blocked_keys: set[CandidateKey] = set()

    def teardown(self) -> None:
        self.store.close()

    def _snapshot(self) -> tuple[object, ...]:
        s = self.store
        return (
            s.candidates(),
            list(s.log()),
            s.blocked_records(),
            s.follow_up_jobs(include_done=True),
            s.leases(),
        )

    def _unchanged(self, check: str, before: tuple[object, ...], **facts: object) -> None:
        after = self._snapshot()
        expect(after == before, check, "a refused call wrote to the store", **facts)

    def _active(self, slug: str) -> _Model | None:
        m = self.model.get(slug)
        return m if m is not None and m.state not in _DONE else None

    # -- rules ---------------------------------------------------------------

    @rule(slug=_SLUGS, sha=_SHAS, branch=_BRANCHES)
    def submit(self, slug: str, sha: str, branch: str) -> None:
        key = CandidateKey(slug, branch, sha)
        current = self.model.get(slug)
        if current is not None and current.key != key and current.state not in _DONE:
            before = self._snapshot()
            try:
                self.engine.submit(key)
            except DuplicateCandidate:
                self._unchanged("submit", before, candidate=key)
                return
            raise AssertionError(f"{key} was accepted while {current.key} holds the slug")
        outcome = self.engine.submit(key)
        if current is not None and current.key == key and current.state != "withdrawn":
            expect(
                outcome.transition is None,
                "submit",
                "a repeated submit moved the candidate",
                candidate=key,
                transition=outcome.transition,
            )
            return
        if outcome.transition is None:
            # Re-submitting an identity integrated earlier is a no-op too.
            expect(
                outcome.candidate.state is State.INTEGRATED,
                "submit",
                "a submit was a no-op for a candidate that is not integrated",
                candidate=key,
                actual=outcome.candidate.state,
            )
            return
        self.model[slug] = _Model(key, "pending", 1)

    def _fire(self, slug: str, event: Event, call: object) -> None:
        current = self._active(slug) or self.model.get(slug)
        before = self._snapshot()
        if current is None:
            try:
                call()  # type: ignore[operator]
            except CandidateNotFound:
                self._unchanged(str(event), before, slug=slug)
                return
            raise AssertionError(f"{event} on unknown {slug} was accepted")
        dest = _SPEC.get((current.state, event.value))
        lease_taken = event is Event.START_APPLY and self.lease_holder not in (None, slug)
        if dest is None or lease_taken:
            try:
                call()  # type: ignore[operator]
            except (IllegalTransition, LeaseHeld) as err:
                expect(
                    isinstance(err, LeaseHeld) == (dest is not None),
                    str(event),
                    "the wrong refusal",
                    slug=slug,
                    state=current.state,
                    error=err,
                )
                self._unchanged(str(event), before, slug=slug, state=current.state)
                return
            raise AssertionError(f"{event} from {current.state} was accepted")
        outcome = call()  # type: ignore[operator]
        expect(
            outcome.state.value == dest,
            str(event),
            "the move did not reach the state the table names",
            candidate=current.key,
            source=current.state,
            expected=dest,
            actual=outcome.state.value,
        )
        if current.state == "applying" and dest != "applying":
            self.lease_holder = None
        if event is Event.START_APPLY:
            self.lease_holder = slug
        current.state = dest
        current.seq += 1
        current.key = outcome.candidate.key
        if event is not Event.START_APPLY:
            current.interruptions = 0
        if event in (Event.BLOCK, Event.INTERRUPT):
            self.blocked_keys.add(current.key)

    @rule(slug=_SLUGS)
    def start_apply(self, slug: str) -> None:
        self._fire(
            slug, Event.START_APPLY, lambda: self.engine.start_apply(slug, owner=f"owner-{slug}")
        )

    @rule(slug=_SLUGS, main=_SHAS)
    def integrate(self, slug: str, main: str) -> None:
        self._fire(slug, Event.INTEGRATE, lambda: self.engine.integrate(slug, main_sha=main))

    @rule(slug=_SLUGS, report=blocked_reports())
    def block(self, slug: str, report: BlockedReport) -> None:
        self._fire(slug, Event.BLOCK, lambda: self.engine.block(slug, report))

    @rule(slug=_SLUGS)
    def start_remediation(self, slug: str) -> None:
        self._fire(slug, Event.START_REMEDIATION, lambda: self.engine.start_remediation(slug))

    @rule(slug=_SLUGS, new_sha=st.none() | _SHAS)
    def resume(self, slug: str, new_sha: str | None) -> None:
        self._fire(
            slug,
            Event.RESUME,
            lambda: self.engine.resume(slug, new_sha=new_sha, force_reason="model test"),
        )

    @rule(slug=_SLUGS, new_sha=_SHAS)
    def supersede(self, slug: str, new_sha: str) -> None:
        self._fire(slug, Event.SUPERSEDE, lambda: self.engine.supersede(slug, new_sha=new_sha))

    @rule(slug=_SLUGS)
    def requeue(self, slug: str) -> None:
        self._fire(slug, Event.REQUEUE, lambda: self.engine.requeue(slug, why="model test"))

    @rule(slug=_SLUGS)
    def withdraw(self, slug: str) -> None:
        self._fire(slug, Event.WITHDRAW, lambda: self.engine.withdraw(slug, why="model test"))

    @rule(slug=_SLUGS, choice=st.integers(0, 3), report=blocked_reports())
    def progress(self, slug: str, choice: int, report: BlockedReport) -> None:
        """Take a legal step, so that deep states are reached in few steps."""
        current = self._active(slug)
        if current is None:
            return
        legal = [e for (s, e) in _SPEC if s == current.state and e != "interrupt"]
        moves: dict[str, Callable[[str], None]] = {
            "start_apply": self.start_apply,
            "integrate": lambda slug: self.integrate(slug, "aaaaaaa" + "1" * 33),
            "block": lambda slug: self.block(slug, report),
            "start_remediation": self.start_remediation,
            "resume": lambda slug: self.resume(slug, None),
            "supersede": lambda slug: self.supersede(slug, "bbbbbbb" + "3" * 33),
            "withdraw": self.withdraw,
            "requeue": self.requeue,
        }
        moves[legal[choice % len(legal)]](slug)

    @precondition(lambda self: self.lease_holder is not None)
    @rule()
    def lease_expires_and_recover(self) -> None:
        self.clock.now += _TTL * 2
        holder = self.lease_holder
        assert holder is not None  # the precondition
        outcomes = self.engine.recover("d" * 40)
        recovered = [o.candidate.key.slug for o in outcomes]
        expect(
            recovered == [holder],
            "lease_expires_and_recover",
            "recovery did not interrupt exactly the lease holder",
            expected=[holder],
            actual=recovered,
        )
        current = self.model[holder]
        # An interrupted apply is requeued at its place; the third in a row is blocked.
        current.interruptions += 1
        if current.interruptions >= MAX_INTERRUPTIONS:
            current.state, current.interruptions = "blocked", 0
            self.blocked_keys.add(current.key)
        else:
            current.state = "pending"
        current.seq += 1
        settled = [o.state.value for o in outcomes]
        expect(
            settled == [current.state],
            "lease_expires_and_recover",
            "recovery settled the holder otherwise than the model",
            expected=[current.state],
            actual=settled,
            interruptions_in_a_row=current.interruptions,
        )
        self.lease_holder = None

    # -- invariants ----------------------------------------------------------

    @invariant()
    def log_folds_to_stored_state(self) -> None:
        violations = self.engine.verify()
        expect(
            violations == [],
            "log_folds_to_stored_state",
            "the log does not replay to the stored state",
            violations=violations,
        )

    @invariant()
    def store_is_sound(self) -> None:
        problems = self.store.integrity_problems()
        expect(problems == [], "store_is_sound", "the store reports problems", problems=problems)

    @invariant()
    def model_agrees(self) -> None:
        stored = {c.key.slug: c for c in self.store.candidates() if c.state.value not in _DONE}
        expected = {s: m for s, m in self.model.items() if m.state not in _DONE}
        expect(
            set(stored) == set(expected),
            "model_agrees",
            "the store and the model hold different active candidates",
            expected=sorted(expected),
            actual=sorted(stored),
        )
        for slug, m in expected.items():
            actual = (stored[slug].state.value, stored[slug].seq, stored[slug].key)
            expect(
                actual == (m.state, m.seq, m.key),
                "model_agrees",
                "a stored candidate differs from the model",
                candidate=m.key,
                expected=(m.state, m.seq, m.key),
                actual=actual,
            )

    @invariant()
    def one_follow_up_per_identity(self) -> None:
        records = self.store.blocked_records()
        keys = [r.key for r in records]
        slugs = [r.follow_up_slug for r in records]
        check, jobs = "one_follow_up_per_identity", self.store.follow_up_jobs(include_done=True)
        expect(len(set(keys)) == len(keys), check, "two records share an identity", keys=keys)
        expect(len(set(slugs)) == len(slugs), check, "two records share a slug", slugs=slugs)
        expect(
            set(keys) == self.blocked_keys,
            check,
            "the blocked identities differ from the model's",
            expected=sorted(self.blocked_keys, key=str),
            actual=sorted(set(keys), key=str),
        )
        expect(
            len(jobs) == len(records),
            check,
            "not one outbox job per blocked record",
            jobs=jobs,
            records=len(records),
        )
