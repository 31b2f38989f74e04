"""SQLite and PostgreSQL side by side: every Engine call on both, the same result after each step.

As Hypothesis' own ``test_database_agreement`` runs its directory and in-memory
databases together, this machine drives two Engines, one per store, with the
same calls and the same clock readings, and insists that they agree: the
outcome or the error (its type and its facts), then the stored candidates,
log, blocked records, evidence, outbox and leases. Row ids and times are left
out of the comparison: PostgreSQL's sequences skip the values a rolled-back or
conflicting insert took, and times are the clock's, not the store's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from psycopg import sql

from mergegate.persistence import PostgresStore, SQLiteStore
from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    Engine,
    FollowUpState,
    Lease,
    MergegateError,
    Outcome,
    Store,
    Transition,
)
from mergegate.statemachine.testing.strategies import blocked_reports

from ..examples import fraction

pytestmark = pytest.mark.postgres

_TABLES = (
    "candidates",
    "transitions",
    "integration_blocked_outcomes",
    "blocked_evidence",
    "follow_up_outbox",
    "leases",
)
_TTL = timedelta(minutes=5)
_SLUGS = st.sampled_from(["alpha", "beta"])
# Two full ids share their first 7 hex digits, so follow-up slugs collide.
_SHAS = st.sampled_from(["aaaaaaa" + "1" * 33, "aaaaaaa" + "2" * 33, "b" * 40])
_BRANCHES = st.sampled_from(["work", "feature/x"])
_OWNERS = st.sampled_from(["w1", "w2"])
_KEYS = st.none() | st.sampled_from(["k1", "k2"])


class _Clock:
    """Still until a rule moves it; each Engine gets its own copy.

    How often a call reads the clock depends on its path (a declined fast move
    reads it twice), so a clock that ticked per reading would make the two
    Engines' times differ for that reason alone.
    """

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _plain(value: object) -> object:
    """``value`` without row ids and times, for comparing two stores."""
    if isinstance(value, Candidate):
        return (value.key, value.state, value.seq)
    if isinstance(value, Transition):
        return (
            value.seq, value.event, value.source, value.dest, value.sha, value.actor,
            value.reason, value.idempotency_key, value.request_digest,
        )  # fmt: skip
    if isinstance(value, BlockedRecord):
        return (
            value.key, value.reason, value.main_sha, value.follow_up_slug,
            value.previous_follow_up, value.status, value.follow_up_state,
            value.follow_up_error, value.occurrences,
        )  # fmt: skip
    if isinstance(value, Lease):
        return (value.name, value.owner)
    if isinstance(value, Outcome):
        return (
            _plain(value.candidate),
            _plain(value.transition),
            _plain(value.blocked),
            value.guidance,
            value.hook_errors,
        )
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def _result(call: Callable[[], object]) -> tuple[Any, ...]:
    """What a call did, comparable across stores: its plain result, or its error and facts."""
    try:
        return ("ok", _plain(call()))
    except MergegateError as err:
        facts = {
            name: _plain(fact)
            for name, fact in sorted(vars(err).items())
            if not isinstance(fact, datetime) and name != "expires_at"
        }
        return ("error", type(err), facts)


def _state(store: Store) -> tuple[object, ...]:
    """Everything the Engine wrote, ids replaced by positions and times left out."""
    candidates = store.candidates()
    position = {c.id: i for i, c in enumerate(candidates)}
    records = store.blocked_records()
    jobs = store.follow_up_jobs(include_done=True)
    return (
        _plain(candidates),
        tuple((position[t.candidate_id], _plain(t)) for t in store.log()),
        _plain(records),
        tuple(tuple((o.number, o.seq, o.report) for o in store.occurrences(r.id)) for r in records),
        tuple((j.follow_up_slug, j.attempts, j.done) for j in jobs),
        tuple(
            (lease.name, lease.owner, position.get(lease.candidate_id or -1))
            for lease in store.leases()
        ),
        tuple(store.integrity_problems()),
    )


class AgreementMachine(RuleBasedStateMachine):
    """Every rule runs on both Engines; both must answer alike and store alike."""

    server: ClassVar[tuple[str, str, psycopg.Connection[Any]] | None] = None
    #: Whether the SQLite and the PostgreSQL Engine use the stores' fast path.
    #: With one side off, the fast path of the other is checked against the
    #: general path: it may decline more often, but never answer differently.
    fast: ClassVar[tuple[bool, bool]] = (True, True)

    def __init__(self) -> None:
        super().__init__()
        assert self.server is not None, "the _server fixture did not run"
        url, schema, admin = self.server
        admin.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                sql.SQL(", ").join(sql.Identifier(schema, t) for t in _TABLES)
            )
        )
        self._dir = tempfile.TemporaryDirectory()
        self.stores: tuple[Store, Store] = (
            SQLiteStore(Path(self._dir.name) / "agree.sqlite3"),
            PostgresStore(url, schema=schema),
        )
        self.clocks = (_Clock(), _Clock())
        self.engines = tuple(
            Engine(store, clock=clock, lease_ttl=_TTL, fast_path=fast)
            for store, clock, fast in zip(self.stores, self.clocks, self.fast, strict=True)
        )

    def teardown(self) -> None:
        for store in self.stores:
            store.close()
        self._dir.cleanup()

    def _both(self, call: Callable[[Engine], object]) -> None:
        sqlite, postgres = (_result(partial(call, engine)) for engine in self.engines)
        assert sqlite == postgres
        event(f"{sqlite[1].__name__}" if sqlite[0] == "error" else "ok")

    def _seq(self, slug: str, stale: bool) -> int | None:
        """The seq a caller would pass: none, the current one, or one behind."""
        found = self.stores[0].candidate(slug)
        if found is None:
            return None
        return found.seq - 1 if stale else found.seq

    # -- rules ---------------------------------------------------------------

    @rule(slug=_SLUGS, sha=_SHAS, branch=_BRANCHES, key=_KEYS)
    def submit(self, slug: str, sha: str, branch: str, key: str | None) -> None:
        self._both(lambda e: e.submit(CandidateKey(slug, branch, sha), idempotency_key=key))

    @rule(slug=_SLUGS, owner=_OWNERS, key=_KEYS, stale=st.booleans())
    def start_apply(self, slug: str, owner: str, key: str | None, stale: bool) -> None:
        seq = self._seq(slug, stale)
        self._both(
            lambda e: e.start_apply(slug, owner=owner, expected_seq=seq, idempotency_key=key)
        )

    @rule(slug=_SLUGS, main=_SHAS)
    def integrate(self, slug: str, main: str) -> None:
        self._both(lambda e: e.integrate(slug, main_sha=main))

    @rule(slug=_SLUGS, report=blocked_reports(), key=_KEYS)
    def block(self, slug: str, report: BlockedReport, key: str | None) -> None:
        self._both(lambda e: e.block(slug, report, idempotency_key=key))

    @rule(slug=_SLUGS, stale=st.booleans())
    def start_remediation(self, slug: str, stale: bool) -> None:
        seq = self._seq(slug, stale)
        self._both(lambda e: e.start_remediation(slug, expected_seq=seq))

    @rule(slug=_SLUGS, new_sha=st.none() | _SHAS, force=st.booleans())
    def resume(self, slug: str, new_sha: str | None, force: bool) -> None:
        why = "agreement test" if force else None
        self._both(lambda e: e.resume(slug, new_sha=new_sha, force_reason=why))

    @rule(slug=_SLUGS, stale=st.booleans())
    def withdraw(self, slug: str, stale: bool) -> None:
        seq = self._seq(slug, stale)
        self._both(lambda e: e.withdraw(slug, why="agreement test", expected_seq=seq))

    @rule(owner=_OWNERS)
    def renew_lease(self, owner: str) -> None:
        self._both(lambda e: e.renew_lease(owner))

    @rule(minutes=st.sampled_from([1, 10]))
    def time_passes_and_recover(self, minutes: int) -> None:
        for clock in self.clocks:
            clock.now += timedelta(minutes=minutes)
        self._both(lambda e: e.recover("d" * 40))

    @rule(slug=_SLUGS, done=st.booleans())
    def finish_follow_up(self, slug: str, done: bool) -> None:
        records = [r for r in self.stores[0].blocked_records() if r.key.slug == slug]
        if not records:
            return
        state, error = (FollowUpState.CREATED, None) if done else (FollowUpState.FAILED, "full")
        for store in self.stores:
            store.finish_follow_up(records[0].follow_up_slug, state, error)

    @rule(slug=_SLUGS)
    def show(self, slug: str) -> None:
        self._both(lambda e: e.show(slug))

    # -- invariants ----------------------------------------------------------

    @invariant()
    def stores_agree(self) -> None:
        sqlite, postgres = (_state(store) for store in self.stores)
        assert sqlite == postgres

    @invariant()
    def both_verify(self) -> None:
        assert [e.verify() for e in self.engines] == [[], []]


@pytest.fixture(autouse=True)
def _server(pg_server: str, pg_schema: str) -> Iterator[None]:
    """Point the machine at a migrated throw-away schema for this test."""
    PostgresStore(pg_server, schema=pg_schema).close()
    with psycopg.connect(pg_server, autocommit=True) as admin:
        AgreementMachine.server = (pg_server, pg_schema, admin)
        yield
        AgreementMachine.server = None


TestSQLiteAndPostgresAgree = AgreementMachine.TestCase
TestSQLiteAndPostgresAgree.settings = fraction(4, stateful_step_count=30)


class _PostgresGeneralOnly(AgreementMachine):
    fast = (True, False)


# SQLite has one path (the Engine's); with the pair above, this one makes
# PostgreSQL's one-call fast path agree with its own general path, by way of
# SQLite's.
TestPostgresFastPathAgreesWithGeneralPath = _PostgresGeneralOnly.TestCase
TestPostgresFastPathAgreesWithGeneralPath.settings = fraction(4, stateful_step_count=30)


@pytest.mark.slow
class TestSQLiteAndPostgresAgreeLong(AgreementMachine.TestCase):  # type: ignore[name-defined,misc]
    """A long run of the agreement machine, for CI."""

    settings = fraction(1 / 2, stateful_step_count=60)
