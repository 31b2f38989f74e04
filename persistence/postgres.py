"""The PostgreSQL store: one queue shared by integrators and operators on several hosts.

Locking is the point of this module. A write transaction serializes one
candidate's moves with a transaction-scoped advisory lock on its slug, taken
before the candidate is read; the lease gets its own advisory lock. The locks
are released by ``COMMIT`` or ``ROLLBACK``, never held by a session, so a
broken client or a connection pool cannot leak one. The advisory lock also
covers a slug that has no row yet, which a row lock (``SELECT ... FOR UPDATE``)
cannot: two submits of one new identity are serialized, and the second sees the
first's row. The ``(candidate_id, seq)`` unique stays underneath as the last
defence.

Every write transaction runs in pipeline mode: statements whose results the
Engine does not need are queued and travel with the next read or the
``COMMIT``, so a move costs two or three round trips, not seven. A plain move
(the Engine's fast path, :class:`~mergegate.statemachine.extension.Move`) costs one: a
call of the server-side function ``mergegate_move`` (migration 13), which takes
the same advisory locks in the same order. The function carries out the flags
of the table's compiled steps (:class:`~mergegate.statemachine.extension.Step`) that
:data:`FAST_FLAGS` names, and the store offers it only steps whose other flags
are all off: every flag is named here as carried or declined, checked at import,
so a new effect cannot reach the function unhandled.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import psycopg

from mergegate.statemachine import (
    Candidate,
    InvalidInput,
    State,
    StoreUnavailable,
    TableError,
)
from mergegate.statemachine.extension import STEP_FLAGS, Move, Moved, Step

from .feed import PostgresWaiter, PostgresWaker
from .migrations import POSTGRES_MIGRATIONS
from .pgsession import BACKEND, SCHEMA_NAME, Lost, PostgresDatastore, first_line
from .pgtext import to_pg
from .rows import _key as candidate_key
from .sqlstore import SQLStore

__all__ = ["PostgresStore"]

# The steps travel as array literals (text, cast on the server), made once per
# event: psycopg's array adaptation costs more client time than the rest of the call.
_MOVE = (
    "SELECT id, branch, sha, source, seq, submitted_at FROM mergegate_move("
    "%s, %s, %s, %s, %s, %s::text[], %s::text[], %s::boolean[], %s::boolean[], "
    "%s::boolean[], %s::boolean[], %s::boolean[], %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

#: The step flags ``mergegate_move`` carries out (its arrays pass them per step;
#: it writes ``active`` and ``queued`` on every move, changed or not).
FAST_FLAGS = frozenset(
    {
        "take_lease",
        "release_lease",
        "close_blocked",
        "drop_blocked",
        "releases_identity",
        "active_changes",
        "queued_changes",
    }
)
#: The flags it does not: a step with any of them on takes the Engine's one path.
#: A block needs its outcome's row and evidence; a new sha, the candidate's new
#: identity; a re-entry, a new queue place; a blocked-carrying destination, its
#: outcome in the answer.
_DECLINED = frozenset({"record_block", "supersede_sha", "reenters", "carries_blocked"})
if FAST_FLAGS | _DECLINED != STEP_FLAGS or FAST_FLAGS & _DECLINED:
    raise TableError(
        "persistence/postgres.py must name every Step flag as carried (FAST_FLAGS) or declined: "
        + ", ".join(sorted(STEP_FLAGS ^ (FAST_FLAGS | _DECLINED)))
    )


def _fast(step: Step) -> bool:
    return not any(getattr(step, flag) for flag in _DECLINED)


@lru_cache(maxsize=64)
def _fast_steps(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """The steps of one event that ``mergegate_move`` may carry out."""
    return tuple(step for step in steps if _fast(step))


@lru_cache(maxsize=64)
def _step_arrays(steps: tuple[Step, ...]) -> tuple[str, ...]:
    """The steps of one event as the seven array literals ``mergegate_move`` takes."""

    def text(values: list[str | None]) -> str:
        # State values are plain lower-case words: no quoting needed.
        return "{" + ",".join("NULL" if v is None else v for v in values) + "}"

    def flags(values: list[bool]) -> str:
        return "{" + ",".join("t" if v else "f" for v in values) + "}"

    return (
        text([None if s.source is None else s.source.value for s in steps]),
        text([s.dest.value for s in steps]),
        flags([s.active for s in steps]),
        flags([s.queued for s in steps]),
        flags([s.take_lease for s in steps]),
        flags([s.release_lease for s in steps]),
        flags([s.close_blocked or s.drop_blocked for s in steps]),
    )


# Whether a call of mergegate_move committed: its entry, in the function's row shape.
_LANDED = (
    "SELECT c.id, c.branch, c.sha, t.source, t.seq - 1, c.submitted_at FROM transitions t "
    "JOIN candidates c ON c.id = t.candidate_id "
    "WHERE c.slug = %s AND t.event = %s AND t.actor = %s AND t.at = %s "
    "ORDER BY t.seq DESC LIMIT 1"
)


class PostgresStore(SQLStore):
    """A :class:`~mergegate.statemachine.Store` on a PostgreSQL database.

    ``url_or_conninfo`` is a ``postgresql://`` URL or a libpq conninfo string.
    ``schema`` puts every table in that schema (created if missing) and sets
    ``search_path`` to it; by default the server's ``search_path`` decides.
    One instance holds one session and may be shared between threads, which
    then take turns (see "Threads" in docs/python-api.md). A lost connection is
    reopened on the next call. Opening applies any missing migration.
    """

    def __init__(
        self,
        url_or_conninfo: str,
        *,
        schema: str | None = None,
        lock_timeout: float = 30.0,
        connect_timeout: int = 10,
    ) -> None:
        if schema is not None and not SCHEMA_NAME.match(schema):
            raise InvalidInput(
                "schema", schema, "use letters, digits and underscores, not starting with a digit"
            )
        if lock_timeout <= 0:
            raise InvalidInput("lock timeout", lock_timeout, "give a positive number of seconds")
        self.schema = schema
        self.lock_timeout = lock_timeout
        self.connect_timeout = connect_timeout
        self._pg = PostgresDatastore(url_or_conninfo, schema, lock_timeout, connect_timeout)
        self.where = self._pg.where
        super().__init__(self._pg, POSTGRES_MIGRATIONS)
        self._conninfo = url_or_conninfo
        self._feed_waiter: PostgresWaiter | None = None
        self._feed_lock = threading.Lock()
        self._waker = PostgresWaker(url_or_conninfo, schema)
        self._pg.after_log = self._waker.wake

    def _waiter(self) -> PostgresWaiter:
        with self._feed_lock:
            if self._feed_waiter is None:
                namespace = self._query("SELECT current_schema()")[0][0]
                self._feed_waiter = PostgresWaiter(self._conninfo, self.schema, namespace)
            return self._feed_waiter

    def close(self) -> None:
        """Send a pending wake-up, then close the session and the feed's sessions."""
        self._waker.close()
        with self._feed_lock:
            if self._feed_waiter is not None:
                self._feed_waiter.close()
        super().close()

    def move(self, move: Move) -> Moved | None:
        """The Engine's fast path in one round trip: a call of ``mergegate_move``.

        ``None`` (nothing written) when the function declined the move, or when
        another writer's row made it fail: the general path then decides.
        """
        steps = _fast_steps(move.steps)
        if not steps:
            return None
        d = self._pg.dialect
        key = move.key
        params = (
            move.slug,
            d.lock_key("candidate", move.slug),
            None if key is None else key.branch,
            None if key is None else key.sha,
            move.event.value,
            *_step_arrays(steps),
            move.expected_seq,
            move.at,
            to_pg(move.actor),
            to_pg(move.note),
            move.lease_name,
            d.lock_key("lease", move.lease_name),
            to_pg(move.owner),
            move.expires_at,
            move.main_sha,
            to_pg(move.interrupted),
        )
        with self._pg.lock:
            try:
                row = self._pg.call(_MOVE, params)
            except psycopg.IntegrityError:
                return None
            except Lost as lost:
                row = self._landed(move, lost.err)
            if row is not None:
                self._waker.wake()
        if row is None:
            return None
        cid, branch, sha, source, seq, submitted = row
        state = State(source) if source is not None else None
        step = move.step(state)
        assert step is not None  # the function chose this step
        before = Candidate(
            cid,
            key or candidate_key(move.slug, branch, sha),
            state or step.dest,
            seq,
            submitted,
            move.at,
        )
        return move.moved(before, step)

    def _landed(self, move: Move, err: BaseException) -> Any:
        """After a lost connection: the move's row if it was committed; else raise.

        The connection can drop before the call reached the server, while the
        function ran, or during its commit. A new session reads whether the
        entry is there (the slug, event, actor and exact time of this call), so
        the caller learns which, instead of "may or may not".
        """
        try:
            row = (
                self._pg.connection()
                .execute(_LANDED, (move.slug, move.event.value, to_pg(move.actor), move.at))
                .fetchone()
            )
        except psycopg.Error:
            raise self._pg.unknown(err) from err
        if row is None:
            raise StoreUnavailable(
                BACKEND,
                f"the connection to {self.where} was lost before the move was committed; "
                f"nothing was written, retry ({first_line(err)})",
            ) from err
        return tuple(row)

    @property
    def _conn(self) -> psycopg.Connection[Any]:
        # The benchmarks read the session's statements through the raw connection.
        with self._pg.lock:
            return self._pg.connection()

    @property
    def backend_pid(self) -> int:
        """The server process id of this store's session, for ``pg_stat_activity``."""
        with self._pg.lock:
            return self._pg.connection().info.backend_pid

    def _engine_problems(self) -> list[str]:
        rows = self._query(
            "SELECT i.indexrelid::regclass::text FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indrelid "
            "WHERE c.relnamespace = current_schema()::regnamespace AND NOT i.indisvalid"
        )
        return [f"postgresql index {name} is invalid; REINDEX it" for (name,) in rows]
