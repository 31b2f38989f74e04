"""A stateful property: the queue is in submission order through requeues and restarts.

The model keeps each queued candidate's place by hand (a promote takes one before
every active candidate's, and a pause leaves nothing to claim): a submit takes the next
place, a requeued link and a supersede keep theirs, a resume after an
interrupted apply keeps its place (a restart must not reorder the queue), any
other resume takes the next place (a re-entry goes to the back). After every
step the store's queue, and the head a claim takes, must be the model's.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from psycopg import sql

from mergegate.persistence import PostgresStore, SQLiteStore
from mergegate.persistence.contract import conflict_report
from mergegate.statemachine import CandidateKey, Engine, Store
from mergegate.statemachine.testing import expect
from mergegate.statemachine.testing.model import StepClock

from ..examples import fraction

_SLUGS = st.sampled_from(["a1", "b2", "c3", "d4", "e5", "f6"])
_SHAS = st.sampled_from(["1" * 40, "2" * 40, "3" * 40])
_TTL = timedelta(minutes=5)
OWNER = "chain"


class QueueOrderMachine(RuleBasedStateMachine):
    """Drives a real Engine on a real store; the queue must follow the model's places."""

    def make_store(self) -> Store:
        """A fresh, empty store; subclasses implement it."""
        raise NotImplementedError

    def __init__(self) -> None:
        super().__init__()
        self.clock = StepClock()
        self.store = self.make_store()
        self.engine = Engine(self.store, clock=self.clock, lease_ttl=_TTL)
        self.engine.hold_lease(OWNER)
        self.places = itertools.count()
        #: slug -> (state, place, interrupted) of every unfinished candidate.
        self.model: dict[str, tuple[str, int, bool]] = {}
        self.paused = False

    def teardown(self) -> None:
        self.store.close()

    def _in(self, *states: str) -> list[str]:
        return sorted(s for s, (state, _, _) in self.model.items() if state in states)

    def _expected_queue(self) -> list[str]:
        queued = [
            (place, s)
            for s, (state, place, _) in self.model.items()
            if state in ("pending", "retry")
        ]
        return [s for _, s in sorted(queued)]

    # -- rules ---------------------------------------------------------------

    @rule(slug=_SLUGS, sha=_SHAS)
    def submit(self, slug: str, sha: str) -> None:
        if slug in self.model:
            return
        if self.engine.submit(CandidateKey(slug, slug, sha)).transition is not None:
            # (Submitting an identity integrated before is a no-op.)
            self.model[slug] = ("pending", next(self.places), False)

    @rule()
    def claim(self) -> None:
        expected = [] if self.paused else self._expected_queue()
        outcome = self.engine.start_next(owner=OWNER)
        actual = None if outcome is None else outcome.candidate.key.slug
        expect(
            actual == (expected[0] if expected else None),
            "claim",
            "a claim did not take the head of the queue",
            expected=expected,
            actual=actual,
        )
        if actual is not None:
            _, place, _ = self.model[actual]
            self.model[actual] = ("applying", place, False)

    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        """An applying link integrates, is blocked, or is thrown back by its chain."""
        applying = self._in("applying")
        if not applying:
            return
        slug = data.draw(st.sampled_from(applying))
        how = data.draw(st.sampled_from(["integrate", "block", "requeue"]))
        _, place, _ = self.model[slug]
        if how == "integrate":
            self.engine.integrate(slug, main_sha="d" * 40)
            del self.model[slug]
        elif how == "block":
            self.engine.block(slug, conflict_report("x.py", main="d" * 40))
            self.model[slug] = ("blocked", place, False)
        else:
            self.engine.requeue(slug, why="rebuilt: base moved")
            self.model[slug] = ("pending", place, False)

    @rule(data=st.data(), new_sha=st.none() | _SHAS)
    def resume(self, data: st.DataObject, new_sha: str | None) -> None:
        """A blocked candidate is remediated and resumed: back of the queue, unless interrupted."""
        blocked = self._in("blocked")
        if not blocked:
            return
        slug = data.draw(st.sampled_from(blocked))
        _, place, interrupted = self.model[slug]
        current = self.store.candidate(slug)
        assert current is not None
        if new_sha == current.key.sha:
            new_sha = None
        self.engine.start_remediation(slug)
        self.engine.resume(slug, new_sha=new_sha, force_reason="property test")
        keeps = interrupted and new_sha is None
        self.model[slug] = ("retry", place if keeps else next(self.places), False)

    @rule(data=st.data(), sha=_SHAS)
    def supersede(self, data: st.DataObject, sha: str) -> None:
        """A force-pushed branch submitted again keeps its place."""
        queued = self._in("pending", "retry")
        if not queued:
            return
        slug = data.draw(st.sampled_from(queued))
        current = self.store.candidate(slug)
        assert current is not None
        if current.key.sha != sha:
            self.engine.supersede(slug, new_sha=sha)

    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        """A withdrawn candidate leaves the queue; the others keep their order."""
        out = self._in("pending", "retry", "blocked")
        if not out:
            return
        slug = data.draw(st.sampled_from(out))
        self.engine.withdraw(slug, why="property test")
        del self.model[slug]

    @rule(data=st.data())
    def promote(self, data: st.DataObject) -> None:
        """A promoted candidate goes before every active one; the others keep their order."""
        queued = self._in("pending", "retry")
        if not queued:
            return
        slug = data.draw(st.sampled_from(queued))
        self.engine.promote(slug, why="property test")
        state, _, interrupted = self.model[slug]
        first = min(place for _, place, _ in self.model.values())
        self.model[slug] = (state, first - 1, interrupted)

    @rule()
    def pause_or_unpause(self) -> None:
        """A paused queue has no head to claim; the unpause gives the same order back."""
        if self.paused:
            self.engine.unpause()
        else:
            self.engine.pause("property test")
        self.paused = not self.paused

    @rule()
    def chain_restart(self) -> None:
        """The chain's integrator dies; recovery requeues every link, each keeping its place."""
        self.clock.now += _TTL * 2
        self.engine.recover("d" * 40)
        for slug in self._in("applying"):
            # Requeued, or blocked on the third interruption in a row: either way, in place.
            _, place, _ = self.model[slug]
            self.model[slug] = self._settled(slug, place)
        self.engine.hold_lease(OWNER)

    def _settled(self, slug: str, place: int) -> tuple[str, int, bool]:
        """The model entry of ``slug`` after recovery settled its apply, as the store says."""
        stored = self.store.candidate(slug)
        assert stored is not None
        state = stored.state.value
        expect(
            state in ("pending", "blocked"),
            "recovery",
            "an interrupted apply must be requeued, or blocked once it keeps interrupting",
            slug=slug,
            state=state,
        )
        return (state, place, state == "blocked")

    @precondition(lambda self: not any(s == "applying" for s, _, _ in self.model.values()))
    @rule()
    def single_restart(self) -> None:
        """A one-at-a-time integrator dies mid-apply: recovery requeues it in place (or blocks)."""
        assert self.engine.release_lease(OWNER)
        expected = self._expected_queue()
        started = self.engine.start_next(owner="single")
        if started is not None:
            slug = started.candidate.key.slug
            expect(slug == expected[0], "single_restart", "not the head", expected=expected)
            self.clock.now += _TTL * 2
            outcomes = self.engine.recover("d" * 40)
            assert [o.candidate.key.slug for o in outcomes] == [slug]
            _, place, _ = self.model[slug]
            self.model[slug] = self._settled(slug, place)
        self.engine.hold_lease(OWNER)

    # -- invariants ----------------------------------------------------------

    @invariant()
    def queue_is_in_order(self) -> None:
        expected = self._expected_queue()
        actual = [c.key.slug for c in self.store.queue()]
        expect(
            actual == expected,
            "queue_is_in_order",
            "the queue's order",
            expected=expected,
            actual=actual,
        )
        head = self.store.next_candidate()
        expect(
            (head.key.slug if head else None) == (expected[0] if expected else None),
            "queue_is_in_order",
            "next_candidate is not the queue's head",
            expected=expected,
        )


class SQLiteQueueOrder(QueueOrderMachine):
    """The machine on a fresh SQLite file per example."""

    def make_store(self) -> Store:
        self._dir = tempfile.TemporaryDirectory()
        return SQLiteStore(Path(self._dir.name) / "order.sqlite3")

    def teardown(self) -> None:
        super().teardown()
        self._dir.cleanup()


TestQueueOrderOnSQLite = SQLiteQueueOrder.TestCase
TestQueueOrderOnSQLite.settings = fraction(1, stateful_step_count=40)

_TABLES = (
    "candidates",
    "transitions",
    "integration_blocked_outcomes",
    "blocked_evidence",
    "follow_up_outbox",
    "leases",
    "queue_controls",
)


class PostgresQueueOrder(QueueOrderMachine):
    """The machine on a PostgreSQL schema emptied before each example (sequences restarted)."""

    server: ClassVar[tuple[str, str, psycopg.Connection[Any]] | None] = None

    def make_store(self) -> Store:
        assert self.server is not None, "the _server fixture did not run"
        url, schema, admin = self.server
        admin.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(schema, t) for t in _TABLES)
            )
        )
        return PostgresStore(url, schema=schema)


@pytest.fixture
def _server(pg_server: str, pg_schema: str) -> Iterator[None]:
    """Point the PostgreSQL machine at a migrated throw-away schema for this test."""
    PostgresStore(pg_server, schema=pg_schema).close()
    with psycopg.connect(pg_server, autocommit=True) as admin:
        PostgresQueueOrder.server = (pg_server, pg_schema, admin)
        yield
        PostgresQueueOrder.server = None


@pytest.mark.postgres
@pytest.mark.usefixtures("_server")
class TestQueueOrderOnPostgres(PostgresQueueOrder.TestCase):  # type: ignore[name-defined,misc]
    """The same property on PostgreSQL: a round trip per call, a third of the profile."""

    settings = fraction(3, stateful_step_count=30)
