"""What only the PostgreSQL store does: its locks, its session, its schema, its lost connections.

Behaviour every store shares is in the contract suite; this module checks the
PostgreSQL mechanisms behind it on a real server.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime

import attrs
import psycopg
import pytest

from mergegate.persistence import PostgresStore
from mergegate.persistence.contract import ManualClock, conflict_report
from mergegate.persistence.migrations import POSTGRES_MIGRATIONS
from mergegate.statemachine import (
    TABLE,
    BlockedReport,
    Candidate,
    CandidateKey,
    CheckResult,
    ConcurrencyConflict,
    Engine,
    Event,
    Evidence,
    FollowUpState,
    Reason,
    State,
    StoreError,
    Transition,
)

from ..procio import wait_until

#: The table's creating step, as the Engine passes it to insert_candidate.
CREATE = TABLE.steps(Event.SUBMIT)[0]

pytestmark = pytest.mark.postgres

KEY = CandidateKey("feat", "feat", "a" * 40)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(conn: psycopg.Connection[tuple[object, ...]], query: str) -> list[tuple[object, ...]]:
    return conn.execute(query).fetchall()


def _terminate(admin: psycopg.Connection[tuple[object, ...]], pid: int) -> None:
    """End session ``pid`` from outside, as a crash or failover would; wait until it is gone."""
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    query = f"SELECT pid, state, wait_event FROM pg_stat_activity WHERE pid = {pid}"
    wait_until(
        lambda: not _rows(admin, query), lambda: f"backend {pid} gone: {_rows(admin, query)}"
    )


def test_lost_connection_mid_transaction_commits_nothing(
    pg: PostgresStore, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    """A backend killed mid-transaction: a clear StoreError, no row left, then a reconnect."""
    pid = pg.backend_pid

    def killed_mid_transaction() -> None:
        with pg.transaction() as tx:
            tx.insert_candidate(KEY, T0, CREATE)
            _terminate(admin, pid)
            tx.candidate("other")

    with pytest.raises(StoreError) as info:
        killed_mid_transaction()
    assert "lost mid-transaction; nothing was committed, reconnect and retry" in str(info.value)
    assert isinstance(info.value.__cause__, psycopg.Error)
    assert _rows(admin, "SELECT count(*) FROM candidates") == [(0,)]
    assert Engine(pg).submit(KEY).state is State.PENDING
    assert pg.backend_pid != pid


def test_lost_connection_between_calls_reconnects(
    pg: PostgresStore, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    """A read on a killed session says the connection was lost; the next call works again."""
    _terminate(admin, pg.backend_pid)
    with pytest.raises(StoreError, match=r"connection to PostgreSQL .* was lost"):
        pg.candidates()
    assert pg.candidates() == []


def test_slug_lock_serializes_writers_of_one_candidate(pg_server: str, pg: PostgresStore) -> None:
    """While one transaction holds a slug, another writer of that slug waits, then times out."""
    other = PostgresStore(pg_server, schema=pg.schema, lock_timeout=0.2)
    try:
        Engine(other).submit(CandidateKey("free", "free", "b" * 40))
        with pg.transaction() as tx:
            assert tx.candidate("feat") is None
            started = time.monotonic()
            with pytest.raises(StoreError, match=r"waited more than 0\.2 s for a lock"):
                Engine(other).submit(KEY)
            assert time.monotonic() - started >= 0.2
            Engine(other).submit(CandidateKey("free2", "free2", "b" * 40))
            tx.insert_candidate(KEY, T0, CREATE)
        assert [c.key.slug for c in other.candidates()] == ["free", "free2", "feat"]
    finally:
        other.close()


def test_lease_lock_keeps_two_integrators_apart(pg_server: str, pg: PostgresStore) -> None:
    """Two applies of different candidates cannot both see the lease free."""
    engine = Engine(pg, clock=ManualClock())
    engine.submit(CandidateKey("one", "one", "a" * 40))
    engine.submit(CandidateKey("two", "two", "a" * 40))
    other = PostgresStore(pg_server, schema=pg.schema, lock_timeout=0.2)
    try:
        with pg.transaction() as tx:
            assert tx.lease("main") is None
            with pytest.raises(StoreError, match="for a lock held by another writer"):
                Engine(other).start_apply("two", owner="w2")
        assert other.leases() == []
    finally:
        other.close()


def test_second_active_identity_inserted_behind_the_engine_is_a_conflict(pg: PostgresStore) -> None:
    """The active-slug unique index turns a second unintegrated row into ConcurrencyConflict."""
    Engine(pg).submit(KEY)
    with pytest.raises(ConcurrencyConflict) as info, pg.transaction() as tx:
        tx.insert_candidate(CandidateKey("feat", "feat", "b" * 40), T0, CREATE)
    assert info.value.expected_seq == 0
    assert len(pg.candidates()) == 1


def test_append_at_a_seq_the_row_never_had_is_a_conflict(pg: PostgresStore) -> None:
    """A write whose candidate seq matches no stored row fails inside its one statement."""
    stored = Engine(pg).submit(KEY).candidate
    ghost = Candidate(stored.id, stored.key, State.PENDING, 5, stored.submitted_at, T0)
    entry = Transition(
        stored.id, 6, Event.START_APPLY, State.PENDING, State.APPLYING, KEY.sha, "test", T0
    )
    with pytest.raises(ConcurrencyConflict) as info, pg.transaction() as tx:
        tx.append(ghost, entry, TABLE.steps(Event.START_APPLY)[0])
    assert info.value.expected_seq == 5
    assert [t.seq for t in pg.history(stored.id)] == [1]
    assert pg.integrity_problems() == []


def test_session_insists_on_synchronous_commit_and_utc(pg_server: str, pg_schema: str) -> None:
    """A URL asking for synchronous_commit=off still gets durable commits."""
    url = f"{pg_server}?options=-csynchronous_commit%3Doff%20-cTimeZone%3DAsia/Tokyo"
    store = PostgresStore(url, schema=pg_schema)
    try:
        assert store._query("SHOW synchronous_commit") == [("on",)]
        assert store._query("SHOW TimeZone") == [("UTC",)]
    finally:
        store.close()


def test_schema_holds_the_tables_in_native_types(
    pg: PostgresStore, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    """Tables live in the chosen schema with timestamptz, jsonb and bigint identity columns."""
    Engine(pg, clock=ManualClock()).submit(KEY)
    Engine(pg, clock=ManualClock()).start_apply("feat", owner="w1")
    Engine(pg, clock=ManualClock()).block("feat", conflict_report("x"))
    types = dict(
        _rows(
            admin,
            "SELECT table_name || '.' || column_name, data_type || "
            "CASE WHEN is_identity = 'YES' THEN ' identity' ELSE '' END "
            "FROM information_schema.columns WHERE table_schema = current_schema()",
        )
    )
    assert types["candidates.id"] == "bigint identity"
    assert types["transitions.at"] == "timestamp with time zone"
    assert types["blocked_evidence.report"] == "jsonb"
    assert _rows(
        admin, "SELECT report -> 'evidence' -> 'conflicted_paths' FROM blocked_evidence"
    ) == [(["x"],)]
    assert pg.schema_versions() == [m.version for m in POSTGRES_MIGRATIONS]


def test_reopening_migrates_once_and_refuses_a_newer_schema(
    pg_server: str, pg: PostgresStore, admin: psycopg.Connection[tuple[object, ...]]
) -> None:
    """Opening again applies nothing twice; a schema newer than the code is refused."""
    again = PostgresStore(pg_server, schema=pg.schema)
    again.close()
    assert pg.schema_versions() == [m.version for m in POSTGRES_MIGRATIONS]
    admin.execute("INSERT INTO schema_migrations VALUES (99, 'future', now())")
    with pytest.raises(StoreError, match="schema version 99, newer than this mergegate knows"):
        PostgresStore(pg_server, schema=pg.schema)


def test_unreachable_server_names_it_without_the_password() -> None:
    """A failed connect says where it tried to go and never shows the password."""
    with pytest.raises(StoreError) as info:
        PostgresStore("postgresql://someone:s3cret@127.0.0.1:1/nowhere", connect_timeout=2)
    message = str(info.value)
    assert "cannot connect to PostgreSQL 127.0.0.1:1/nowhere as someone" in message
    assert "s3cret" not in message


def test_one_transaction_sees_its_own_moves_of_one_candidate(pg: PostgresStore) -> None:
    """A batch moving one candidate many times reads back each move (the per-transaction caches)."""
    engine = Engine(pg, clock=ManualClock())
    engine.submit(KEY)
    with engine.batch() as batch:
        batch.start_apply("feat", owner="w1")
        batch.block("feat", conflict_report("x"))
        batch.block("feat", conflict_report("y"))
        batch.start_remediation("feat")
        batch.resume("feat", new_sha="b" * 40, force_reason="fixed")
        batch.start_apply("feat", owner="w1")
        batch.block("feat", conflict_report("z"))
    states = [o.state for o in batch.outcomes]
    assert states[-1] is State.BLOCKED
    assert [o.candidate.seq for o in batch.outcomes] == list(range(2, 9))
    first, second = sorted(pg.blocked_records(), key=lambda r: r.id)
    assert (first.status, first.occurrences) == ("resumed", 2)
    assert (second.key.sha, second.occurrences, second.status) == ("b" * 40, 1, "open")
    assert second.previous_follow_up == first.follow_up_slug
    assert batch.outcomes[2].blocked is not None
    assert batch.outcomes[2].blocked.occurrences == 2
    assert Engine(pg).verify() == []
    assert pg.integrity_problems() == []


def test_free_text_with_nul_is_stored_exactly(pg: PostgresStore) -> None:
    """Text PostgreSQL cannot hold (U+0000) round-trips through every free-text column."""
    odd = "out\0put \ue000 \ue0000 end"
    engine = Engine(pg, clock=ManualClock(), actor=f"bot{odd}")
    engine.submit(KEY)
    engine.start_apply("feat", owner=f"w{odd}")
    [lease] = pg.leases()
    assert lease.owner == f"w{odd}"
    assert pg.renew_lease("main", f"w{odd}", T0).owner == f"w{odd}"
    report = BlockedReport(
        Reason.CHECKS_FAILED,
        "0" * 40,
        Evidence(checks=(CheckResult("unit", 1, odd),), diagnostic=odd),
        detail=odd,
    )
    blocked = engine.block("feat", report, idempotency_key=odd)
    assert blocked.blocked is not None
    [occurrence] = pg.occurrences(blocked.blocked.id)
    assert occurrence.report == report
    pg.finish_follow_up(blocked.blocked.follow_up_slug, FollowUpState.FAILED, odd)
    assert pg.blocked_record(KEY) == attrs.evolve(
        blocked.blocked, follow_up_state=FollowUpState.FAILED, follow_up_error=odd
    )
    engine.start_remediation("feat")
    engine.resume("feat", force_reason=odd)
    history = pg.history(blocked.candidate.id)
    assert {t.actor for t in history} == {f"bot{odd}"}
    assert history[2].idempotency_key == odd
    assert history[-1].reason == f"forced: {odd}"
    assert engine.block("feat", report, idempotency_key=odd).transition == history[2]


@pytest.mark.parametrize(
    ("fast", "says"),
    [
        (False, "while committing; the transaction may or may not"),
        # The fast path's one call is read back on a new session: it knows.
        (True, "lost before the move was committed; nothing was written"),
    ],
    ids=["general-path", "fast-path"],
)
def test_lost_connection_during_commit_says_what_is_known(
    pg_server: str,
    pg: PostgresStore,
    admin: psycopg.Connection[tuple[object, ...]],
    fast: bool,
    says: str,
) -> None:
    """A backend killed while COMMIT runs: unknown on the general path, read back on the fast."""
    # A deferred trigger makes COMMIT itself slow, so the kill lands inside it.
    admin.execute(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$"
    )
    admin.execute(
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON transitions "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
    )
    pid = pg.backend_pid

    def kill_when_committing() -> None:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'PgSleep'"
            while not conn.execute(query, (pid,)).fetchall():
                time.sleep(0.01)
            _terminate(conn, pid)

    killer = threading.Thread(target=kill_when_committing)
    killer.start()
    try:
        with pytest.raises(StoreError, match=says):
            Engine(pg, fast_path=fast).submit(KEY)
    finally:
        killer.join(timeout=60)
    assert _rows(admin, "SELECT count(*) FROM candidates") == [(0,)]


def test_a_closed_store_refuses_instead_of_reconnecting(pg_server: str, pg_schema: str) -> None:
    """After close(), calls raise StoreError rather than silently opening a new session."""
    store = PostgresStore(pg_server, schema=pg_schema)
    store.close()
    with pytest.raises(StoreError, match="was closed; open a new one"):
        store.candidates()


def test_ctrl_c_mid_transaction_writes_nothing_and_the_store_goes_on(pg: PostgresStore) -> None:
    """A KeyboardInterrupt while waiting on the server propagates; nothing is written."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    def interrupted_mid_transaction() -> None:
        with pg.transaction() as tx:
            tx.insert_candidate(KEY, T0, CREATE)
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            tx._one("SELECT pg_sleep(5)", ())

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupted_mid_transaction()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert pg.candidates() == []
    assert Engine(pg).submit(KEY).state is State.PENDING


def test_pipelined_reads_after_notice_raising_ddl_get_their_own_rows(pg: PostgresStore) -> None:
    """A read pipelined after ``CREATE ... IF NOT EXISTS`` gets its own rows, not the DDL's."""
    conn = pg._conn
    conn.execute("CREATE TABLE IF NOT EXISTS notice_probe (version bigint PRIMARY KEY)")
    conn.execute("INSERT INTO notice_probe VALUES (1), (2) ON CONFLICT DO NOTHING")
    wrong = 0
    for _ in range(100):
        with conn.pipeline():
            cur = conn.cursor()
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (7,))
            cur.execute("CREATE TABLE IF NOT EXISTS notice_probe (version bigint PRIMARY KEY)")
            try:
                rows = cur.execute("SELECT version FROM notice_probe ORDER BY version").fetchall()
            except psycopg.ProgrammingError:
                wrong += 1
                continue
            wrong += [tuple(r) for r in rows] != [(1,), (2,)]
    assert wrong == 0, f"{wrong} of 100 pipelined reads got another statement's result"
