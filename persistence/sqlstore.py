"""The SQL store, written once: reads, the write context and the migration runner.

A backend contributes a :class:`~.datastore.Datastore` (its connection and
driver errors) and, through it, a :class:`~.dialect.Dialect` (what its SQL
says differently). Everything else is here, in :mod:`.sqltransaction`, or in
the reads mixed into :class:`SQLStore` (:mod:`.blockedreads`,
:mod:`.boundedreads`, :mod:`.controls`, :mod:`.ledger`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from mergegate.statemachine import (
    TABLE,
    Candidate,
    CandidateKey,
    Change,
    Event,
    FollowUpState,
    InvalidInput,
    Lease,
    State,
    StoreError,
    Transition,
)

from .blockedreads import BlockedReads
from .boundedreads import BoundedReads
from .controls import ControlReads
from .datastore import Datastore
from .dialect import Dialect
from .feed import after_params, changes_query, encode, head_query
from .ledger import LedgerReads
from .migrations import Migration
from .rows import CANDIDATE, LEASE, TRANSITION, Mapper, named
from .sqltransaction import CANDIDATE_BY_SLUG, SQLTransaction
from .txqueue import QUEUE_ORDER

__all__ = ["SQLStore", "Write"]

_ACTIVE_VALUES = tuple(sorted(s.value for s in TABLE.active))


class Write:
    """The context of one write transaction: the store's lock, then BEGIN ... COMMIT.

    A class, not a ``@contextmanager`` generator: one is entered per Engine
    call, and a generator costs more than the Python around a move's statements.
    """

    __slots__ = ("_ds", "_map", "_tx")

    def __init__(self, ds: Datastore, mapper: Mapper) -> None:
        self._ds = ds
        self._map = mapper
        self._tx: SQLTransaction | None = None

    def __enter__(self) -> SQLTransaction:
        self._ds.lock.acquire()
        try:
            cursor = self._ds.begin()
        except BaseException:
            self._ds.lock.release()
            raise
        self._tx = SQLTransaction(cursor, self._ds.dialect, self._map)
        return self._tx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tx, self._tx = self._tx, None
        assert tx is not None
        try:
            if exc is None:
                self._ds.commit(tx)
            else:
                self._ds.abort(exc, tx)
        finally:
            self._ds.lock.release()


class SQLStore(LedgerReads, ControlReads, BlockedReads, BoundedReads):
    """A :class:`~mergegate.statemachine.Store` over one datastore.

    Safe to share between threads: the datastore's lock is held for each
    transaction and around each read, so callers take turns on one connection.
    """

    backend: str

    def __init__(self, ds: Datastore, migrations: tuple[Migration, ...]) -> None:
        """Use ``ds`` and bring its schema up to ``migrations``; closes ``ds`` on failure."""
        self._ds = ds
        self._map = Mapper(ds.dialect)
        self.backend = ds.dialect.backend
        self._migrations = migrations
        try:
            self._migrate()
        except BaseException:
            ds.close()
            raise

    # -- plumbing ------------------------------------------------------------

    def _query(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._ds.lock:
            return self._ds.query(self._ds.dialect.sql(query), params)

    @property
    def _dialect(self) -> Dialect:
        return self._ds.dialect

    def _time(self, value: datetime) -> Any:
        return self._ds.dialect.time_in(value)

    def _migrate(self) -> None:
        """Apply missing migrations; only one cheap read when the schema is current."""
        latest = self._migrations[-1].version
        with self._ds.lock:
            if self._ds.recorded_version() == latest:
                return
        with self.transaction() as tx:
            self._ds.prepare_migration(tx)
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version {int} PRIMARY KEY, "
                "name {text} NOT NULL, applied_at {time} NOT NULL)".format_map(
                    self._ds.dialect.types
                )
            )
            done = {int(row[0]) for row in tx.rows("SELECT version FROM schema_migrations")}
            if done and max(done) > latest:
                raise StoreError(
                    self.backend,
                    f"{self._ds.where} has schema version {max(done)}, newer than this "
                    f"mergegate knows ({latest}); upgrade mergegate",
                )
            applied: list[Any] = []
            for migration in self._migrations:
                if migration.version in done:
                    continue
                for statement in migration.statements:
                    # The backend's rendered list holds plain SQL only.
                    assert isinstance(statement, str)
                    tx.execute(statement)
                applied += (migration.version, migration.name, self._time(datetime.now(UTC)))
            if applied:
                # One statement for all the versions: the same INSERT run once per
                # migration was prepared by psycopg on its sixth run, inside this
                # pipeline among DDL, and the session's next prepared statement then
                # named one the server did not have ("_pg3_1 does not exist").
                rows = ", ".join(["(?, ?, ?)"] * (len(applied) // 3))
                tx.execute(
                    f"INSERT INTO schema_migrations (version, name, applied_at) VALUES {rows}",
                    tuple(applied),
                )

    def schema_versions(self) -> list[int]:
        """The migration versions applied to this database, in order."""
        return [row[0] for row in self._query("SELECT version FROM schema_migrations ORDER BY 1")]

    def transaction(self) -> Write:
        """A write transaction; commits on normal exit, rolls back on an error.

        A conflict the database detects in a write (a duplicate ``(candidate,
        seq)``, a second active candidate of one slug) surfaces as
        ConcurrencyConflict, at the latest when the block exits.
        """
        return Write(self._ds, self._map)

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        with self._ds.lock:
            self._ds.close()

    # -- reads ---------------------------------------------------------------

    def candidate(self, slug: str) -> Candidate | None:
        rows = self._query(CANDIDATE_BY_SLUG, (slug,))
        return self._map.candidate(rows[0]) if rows else None

    def candidate_by_id(self, candidate_id: int) -> Candidate | None:
        rows = self._query(
            f"SELECT {named(CANDIDATE)} FROM candidates WHERE id = ?", (candidate_id,)
        )
        return self._map.candidate(rows[0]) if rows else None

    def candidates(self, state: State | None = None) -> list[Candidate]:
        sql = f"SELECT {named(CANDIDATE)} FROM candidates"
        params: tuple[Any, ...] = ()
        if state is not None:
            sql, params = sql + " WHERE state = ?", (state.value,)
        return [self._map.candidate(r) for r in self._query(sql + " ORDER BY id", params)]

    def next_candidate(self) -> Candidate | None:
        rows = self._query(
            f"SELECT {named(CANDIDATE)} FROM candidates WHERE queued ORDER BY {QUEUE_ORDER} LIMIT 1"
        )
        return self._map.candidate(rows[0]) if rows else None

    def queue(self) -> list[Candidate]:
        rows = self._query(
            f"SELECT {named(CANDIDATE)} FROM candidates WHERE queued ORDER BY {QUEUE_ORDER}"
        )
        return [self._map.candidate(r) for r in rows]

    def history(self, candidate_id: int, since: datetime | None = None) -> list[Transition]:
        sql = f"SELECT {named(TRANSITION)} FROM transitions WHERE candidate_id = ?"
        params: tuple[Any, ...] = (candidate_id,)
        if since is not None:
            sql, params = sql + " AND at >= ?", (*params, self._time(since))
        return [self._map.transition(r) for r in self._query(sql + " ORDER BY seq", params)]

    def history_of(self, slug: str, since: datetime | None = None) -> list[Transition]:
        sql = (
            f"SELECT {named(TRANSITION, 't')} FROM transitions t "
            "JOIN candidates c ON c.id = t.candidate_id WHERE c.slug = ?"
        )
        params: tuple[Any, ...] = (slug,)
        if since is not None:
            sql, params = sql + " AND t.at >= ?", (*params, self._time(since))
        sql += " ORDER BY t.candidate_id, t.seq"
        return [self._map.transition(r) for r in self._query(sql, params)]

    def log(self) -> Iterator[Transition]:
        rows = self._query(
            f"SELECT {named(TRANSITION)} FROM transitions ORDER BY candidate_id, seq"
        )
        return (self._map.transition(r) for r in rows)

    # -- the change feed (mergegate.statemachine.feed) ------------------------

    def changes(self, after: int = 0, *, limit: int = 1000) -> list[Change]:
        """Up to ``limit`` changes after cursor ``after`` (``0``: the beginning), oldest first.

        Gap-free: a change never appears after one with a larger cursor was
        read (persistence/feed.py says how each backend keeps that promise).
        """
        if limit < 1:
            raise InvalidInput("limit", limit, "give a positive number of changes")
        if not isinstance(after, int) or after < 0:
            raise InvalidInput("cursor", after, "give a cursor a change gave, or 0")
        rows = self._query(changes_query(self.backend), (*after_params(self.backend, after), limit))
        out = []
        for row in rows:
            entry = self._map.transition(row)
            out.append(
                Change(
                    encode(self.backend, int(row["feed_tx"]), int(row["feed_id"])),
                    CandidateKey(row["feed_slug"], row["feed_branch"], entry.sha),
                    entry,
                )
            )
        return out

    def feed_head(self) -> int:
        """The cursor of the newest readable change, ``0`` for an empty log."""
        rows = self._query(head_query(self.backend))
        return encode(self.backend, int(rows[0][0]), int(rows[0][1])) if rows else 0

    def wait_for_change(self, cursor: int, timeout: float) -> bool:
        """Block until a change after ``cursor`` is readable (``True``), or ``timeout``
        seconds pass (``False``); wakes on a commit, not on a poll interval."""
        if not isinstance(cursor, int) or cursor < 0:
            raise InvalidInput("cursor", cursor, "give a cursor a change gave, or 0")
        return bool(self._waiter().wait(cursor, timeout))

    def wait_for_control(self, after: int, timeout: float) -> bool:
        """Block until a queue control newer than id ``after`` is logged (``True``), or
        ``timeout`` seconds pass (``False``); wakes as :meth:`wait_for_change` does."""
        return bool(self._waiter().wait(after, timeout, controls=True))

    def _waiter(self) -> Any:
        raise NotImplementedError

    def edge_counts(self) -> dict[tuple[State | None, Event, State], int]:
        rows = self._query(
            "SELECT source, event, dest, COUNT(*) FROM transitions GROUP BY source, event, dest"
        )
        return {(State(r[0]) if r[0] else None, Event(r[1]), State(r[2])): int(r[3]) for r in rows}

    def leases(self) -> list[Lease]:
        rows = self._query(f"SELECT {named(LEASE)} FROM leases ORDER BY name")
        return [self._map.lease(r) for r in rows]

    # -- store-level writes --------------------------------------------------

    def renew_lease(self, name: str, owner: str, expires_at: datetime) -> Lease:
        """Push the expiry of ``owner``'s lease.

        Raises LeaseHeld if another owner holds it now; with ``lost`` set if nobody does
        (another process recovered it).
        """
        with self.transaction() as tx:
            return tx.renew_lease(name, owner, expires_at)

    def finish_follow_up(
        self, follow_up_slug: str, state: FollowUpState, error: str | None
    ) -> None:
        """Record the result of materializing a follow-up; ``CREATED`` marks its outbox row done."""
        with self.transaction() as tx:
            tx.finish_follow_up(follow_up_slug, state, error, datetime.now(UTC))

    # -- integrity -----------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """Cross-table checks every SQL store must pass; empty when sound."""
        problems = []
        for cid, seq, count, top in self._query(
            "SELECT c.id, c.seq, COUNT(t.seq), COALESCE(MAX(t.seq), 0) FROM candidates c "
            "LEFT JOIN transitions t ON t.candidate_id = c.id GROUP BY c.id, c.seq"
        ):
            if not seq == count == top:
                problems.append(f"candidate {cid}: seq {seq}, {count} log entries, last seq {top}")
        for bid, occurrences, count in self._query(
            "SELECT b.id, b.occurrences, COUNT(e.id) FROM integration_blocked_outcomes b "
            "LEFT JOIN blocked_evidence e ON e.blocked_id = b.id GROUP BY b.id, b.occurrences"
        ):
            if occurrences != count:
                problems.append(f"blocked outcome {bid}: {occurrences} occurrences, {count} rows")
        for (slug,) in self._query(
            "SELECT b.follow_up_slug FROM integration_blocked_outcomes b "
            "LEFT JOIN follow_up_outbox o ON o.follow_up_slug = b.follow_up_slug "
            "WHERE o.id IS NULL"
        ):
            problems.append(f"follow-up {slug} has no outbox row")
        for (name,) in self._query(
            "SELECT l.name FROM leases l LEFT JOIN candidates c ON c.id = l.candidate_id "
            "WHERE l.candidate_id IS NOT NULL AND (c.id IS NULL OR c.state <> ?)",
            (State.APPLYING.value,),
        ):
            problems.append(f"lease {name} is held for a candidate that is not applying")
        for cid, state in self._query(
            "SELECT id, state FROM candidates WHERE active <> (state IN "
            f"({', '.join('?' for _ in _ACTIVE_VALUES)}))",
            _ACTIVE_VALUES,
        ):
            problems.append(f"candidate {cid}: its active flag disagrees with state {state}")
        # SQLite cannot add NOT NULL to an existing column: the write path sets it.
        for (cid,) in self._query("SELECT id FROM candidates WHERE queue_pos IS NULL"):
            problems.append(f"candidate {cid}: no queue position")
        problems.extend(self._engine_problems())
        return problems

    def _engine_problems(self) -> list[str]:
        return []
