"""The shared SQL store: a current schema opens without writing, leases, the request digest."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.persistence.contract import ManualClock
from mergegate.persistence.migrations import MIGRATIONS
from mergegate.statemachine import (
    TABLE,
    ApplyResult,
    CandidateKey,
    Engine,
    Event,
    Integrated,
    LeaseHeld,
    State,
    Store,
    Transition,
)


def test_reopening_a_current_sqlite_file_needs_no_write_lock(tmp_path: Path) -> None:
    """With another writer holding the file, a current store still opens at once."""
    path = tmp_path / "store.sqlite3"
    SQLiteStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        store = SQLiteStore(path, busy_timeout=0.2)
        assert store.schema_versions()[-1] == MIGRATIONS[-1].version
        store.close()
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.mark.postgres
def test_reopening_a_current_postgres_schema_takes_no_migration_lock(
    pg_server: str, pg_schema: str
) -> None:
    """While another session holds the migration lock, a current schema still opens at once."""
    import psycopg

    from mergegate.persistence import PostgresStore

    first = PostgresStore(pg_server, schema=pg_schema)
    key = first._pg.dialect.lock_key("migrate")
    first.close()
    with psycopg.connect(pg_server) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        store = PostgresStore(pg_server, schema=pg_schema, lock_timeout=0.5)
        assert store.schema_versions()[-1] == MIGRATIONS[-1].version
        store.close()


def test_renewing_a_recovered_lease_says_it_was_lost(store: Store) -> None:
    """After recover() took the expired lease away, a renewal names the loss, not 'nobody'."""
    clock = ManualClock()
    engine = Engine(store, clock=clock)
    engine.submit(CandidateKey("feat", "feat", "a" * 40))
    engine.start_apply("feat", owner="w1", ttl=timedelta(seconds=5))
    clock.advance(seconds=10)
    [recovered] = engine.recover(main_sha="b" * 40)
    assert recovered.candidate.state is State.PENDING
    with pytest.raises(LeaseHeld) as info:
        store.renew_lease("main", "w1", clock.now + timedelta(minutes=1))
    assert info.value.lost is True
    assert str(info.value) == (
        "integration lease 'main' of 'w1' was lost: another process recovered it "
        "after it expired; stop this apply and re-read the candidate"
    )


def test_request_digest_is_stored_and_read_back(store: Store) -> None:
    """A log entry's request_digest survives the round trip through the store."""
    engine = Engine(store, clock=ManualClock())
    candidate = engine.submit(CandidateKey("feat", "feat", "a" * 40)).candidate
    entry = Transition(
        candidate_id=candidate.id,
        seq=candidate.seq + 1,
        event=Event.START_APPLY,
        source=candidate.state,
        dest=State.APPLYING,
        sha=candidate.key.sha,
        actor="w1",
        at=candidate.updated_at + timedelta(seconds=1),
        idempotency_key="job-1",
        request_digest="sha256:" + "d" * 64,
    )
    with store.transaction() as tx:
        tx.append(candidate, entry, TABLE.steps(Event.START_APPLY)[0])
    with store.transaction() as tx:
        assert tx.transition_by_idempotency_key(candidate.id, "job-1") == entry
    assert store.history(candidate.id)[-1] == entry


class _BeatingApplier:
    """A real Applier that beats at chosen times and records the lease expiry after each beat."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        self.store = store
        self.clock = clock
        self.expiries: list[object] = []

    def _beat(self, heartbeat: Callable[..., None], **kwargs: bool) -> None:
        heartbeat(**kwargs)
        self.expiries.append(self.store.leases()[0].expires_at)

    def apply(self, key: CandidateKey, heartbeat: Callable[..., None]) -> ApplyResult:
        self.expiries.append(self.store.leases()[0].expires_at)  # as start_apply took it
        self.clock.advance(seconds=60)  # a tenth of the ten-minute TTL
        self._beat(heartbeat, fence=False)
        self.clock.advance(seconds=180)  # now past a third of it
        self._beat(heartbeat, fence=False)
        self._beat(heartbeat)  # the fence: right before main would move
        return Integrated("b" * 40, "c" * 40)

    def main_sha(self) -> str:
        return "b" * 40


def test_routine_heartbeat_renews_only_after_a_third_of_the_ttl_and_the_fence_always(
    store: Store,
) -> None:
    """A routine beat early in the TTL writes nothing; a late one and the fence renew the lease."""
    clock = ManualClock()
    # renew_after=None: the beat itself decides (routine or fence), as documented.
    engine = Engine(store, clock=clock, lease_ttl=timedelta(minutes=10), renew_after=None)
    engine.submit(CandidateKey("feat", "feat", "a" * 40))
    applier = _BeatingApplier(store, clock)
    done = engine.apply("feat", applier, owner="w1")
    assert done.candidate.state is State.INTEGRATED
    taken, skipped, renewed, fenced = applier.expiries
    assert skipped == taken
    assert renewed > taken
    assert fenced > renewed


class _QuickApplier(_BeatingApplier):
    """A real Applier whose every beat, the fence included, comes early in the TTL."""

    def apply(self, key: CandidateKey, heartbeat: Callable[..., None]) -> ApplyResult:
        self.expiries.append(self.store.leases()[0].expires_at)
        self.clock.advance(seconds=60)
        self._beat(heartbeat, fence=False)
        self._beat(heartbeat)
        return Integrated("b" * 40, "c" * 40)


def test_default_engine_writes_no_renewal_while_the_lease_is_fresh(store: Store) -> None:
    """By default a beat in the first third of the TTL only reads: the lease is not rewritten."""
    clock = ManualClock()
    engine = Engine(store, clock=clock, lease_ttl=timedelta(minutes=10))
    assert engine.renew_after == timedelta(minutes=10) / 3
    engine.submit(CandidateKey("feat", "feat", "a" * 40))
    applier = _QuickApplier(store, clock)
    done = engine.apply("feat", applier, owner="w1")
    assert done.candidate.state is State.INTEGRATED
    assert applier.expiries[1:] == [applier.expiries[0]] * 2
