"""The write half of every SQL store: one transaction, written once.

The queries use ``?`` placeholders and the dialect rewrites them. Reads wait
for their rows; writes whose results nobody needs are only executed, so on
PostgreSQL, whose transactions run in pipeline mode, they travel with the next
read or with the ``COMMIT``. No write here needs a row count: a stale move
fails a constraint inside its own statement (see :meth:`SQLTransaction.append`),
and the store turns that failure into ConcurrencyConflict using
:attr:`SQLTransaction.context`.

Reading a candidate fetches, in the same query where the dialect asks for it
(``prefetch``), its blocked outcome and the slug's newest follow-up. Only a
transaction that holds the candidate (SQLite's ``BEGIN IMMEDIATE`` keeps every
other writer out; PostgreSQL's advisory lock on the slug keeps out every writer
of that slug) changes those rows, so they are remembered, and kept current,
until the transaction ends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    Control,
    ControlEntry,
    FollowUpState,
    Lease,
    LeaseHeld,
    QueueControls,
    Reason,
    Transition,
)
from mergegate.statemachine.extension import Step

from .controls import CONTROLS_IN_FORCE, INSERT_CONTROL, PROMOTE, control_entry, controls_in_force
from .dialect import NEXT_QUEUE_POS, Dialect
from .rows import BLOCKED, CANDIDATE, LEASE, TRANSITION, Mapper, _key, named

__all__ = ["SQLTransaction"]

# The active candidate first, else the newest integrated one.
CANDIDATE_BY_SLUG = (
    f"SELECT {named(CANDIDATE)} FROM candidates WHERE slug = ? "
    "ORDER BY active DESC, id DESC LIMIT 1"
)
# The queue's order is the stored position: set on submit, kept by a requeue,
# renewed by a resume (a re-entry goes to the back). Ties cannot happen on one
# store; the id breaks them anyway, so the order is total.
QUEUE_ORDER = "queue_pos, id"
QUEUE_HEAD = f"SELECT slug FROM candidates WHERE queued ORDER BY {QUEUE_ORDER} LIMIT 1"
CANDIDATE_BY_KEY = (
    f"SELECT {named(CANDIDATE)} FROM candidates "
    "WHERE slug = ? AND branch = ? AND sha = ? ORDER BY id DESC LIMIT 1"
)
BLOCKED_BY_KEY = (
    f"SELECT {named(BLOCKED)} FROM integration_blocked_outcomes "
    "WHERE slug = ? AND branch = ? AND sha = ?"
)
LEASE_BY_NAME = f"SELECT {named(LEASE)} FROM leases WHERE name = ?"
_CANDIDATE_WITH_BLOCKED = (
    f"SELECT {named(CANDIDATE, 'c')}, {named(BLOCKED, 'b', 'b_')}, "
    "(SELECT follow_up_slug FROM integration_blocked_outcomes WHERE slug = c.slug "
    "ORDER BY id DESC LIMIT 1) AS latest_follow_up "
    f"FROM ({CANDIDATE_BY_SLUG}) c LEFT JOIN integration_blocked_outcomes b "
    "ON b.slug = c.slug AND b.branch = c.branch AND b.sha = c.sha"
)

# A new row is written as its creating entry will leave it (state, flags, seq 1,
# the entry's time): no other transaction can see it before this one commits, so
# the entry that follows needs no seq guard and the row no second write.
_INSERT_CANDIDATE = (
    "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at, active, "
    f"queued, queue_pos) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, {NEXT_QUEUE_POS})"
)
_FIRST_ENTRY = (
    f"INSERT INTO transitions ({', '.join(TRANSITION)}) VALUES "
    f"(?, {', '.join('?' * (len(TRANSITION) - 1))})"
)
# A re-entry (a step that ``reenters``: a resume) goes to the back of the queue,
# as a re-approved change does in bors or Zuul. Every other move keeps the
# position, and so does the resume of an apply that was only interrupted (a
# killed or stalled integrator, at the same sha): the candidate was not at
# fault, and a restart must not reorder the queue. A resume at a new sha is new
# work and always goes to the back (_TO_THE_BACK): the new identity may carry an
# old, resumed outcome of its own, which says nothing about this block.
_TO_THE_BACK = f"UPDATE candidates SET queue_pos = {NEXT_QUEUE_POS} WHERE id = ?"
_REENTER = (
    f"UPDATE candidates SET queue_pos = {NEXT_QUEUE_POS} WHERE id = ? AND NOT EXISTS "
    "(SELECT 1 FROM integration_blocked_outcomes o WHERE o.slug = candidates.slug "
    "AND o.branch = candidates.branch AND o.sha = candidates.sha "
    f"AND o.reason = '{Reason.APPLY_INTERRUPTED.value}')"
)

# The entry names its candidate through a sub-select that finds nothing when
# the candidate's seq is not the one the writer read; the NULL candidate_id
# then fails NOT NULL. A writer whose read went stale also collides with the
# entry that got there first on the log's (candidate_id, seq) unique. So a
# stale move fails inside this one statement, without a row count.
_VALUES = ", ".join("?" * (len(TRANSITION) - 1))
_APPEND = (
    f"INSERT INTO transitions ({', '.join(TRANSITION)}) VALUES "
    f"((SELECT id FROM candidates WHERE id = ? AND seq = ?), {_VALUES})"
)


def _move_sql(sha: bool, active: bool, queued: bool) -> str:
    """The candidate row's update, setting only what changed.

    An index whose columns (and predicate) the SET list does not name is left
    alone, so a move that keeps the row's flags and sha writes no index page of
    ``candidates``: only the row's own page.
    """
    sets = ["state = ?", "seq = ?", "updated_at = ?"]
    sets += ["sha = ?"] * sha + ["active = ?"] * active + ["queued = ?"] * queued
    return f"UPDATE candidates SET {', '.join(sets)} WHERE id = ?"


# Indexed by (sha changed, active changed, queued changed).
_MOVES = {
    (sha, active, queued): _move_sql(sha, active, queued)
    for sha in (False, True)
    for active in (False, True)
    for queued in (False, True)
}

# Where a CTE may write (PostgreSQL), the update and the entry are ONE
# statement: the update finds no row when the candidate's seq is not the one
# the writer read, and the entry's candidate_id is then NULL and fails NOT NULL.
_MOVES_CTE = {
    shape: (
        f"WITH moved AS ({sql[: -len(' WHERE id = ?')]} WHERE id = ? AND seq = ? RETURNING id) "
        f"INSERT INTO transitions ({', '.join(TRANSITION)}) VALUES "
        f"((SELECT id FROM moved), {_VALUES})"
    )
    for shape, sql in _MOVES.items()
}

_PUT_LEASE = (
    f"INSERT INTO leases ({', '.join(LEASE)}) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
    "candidate_id = excluded.candidate_id, acquired_at = excluded.acquired_at, "
    "expires_at = excluded.expires_at"
)
_DROP_LEASE = "DELETE FROM leases WHERE name = ? AND candidate_id = ?"

_UPSERT_BLOCKED = (
    "INSERT INTO integration_blocked_outcomes AS o (slug, branch, sha, reason, main_sha, "
    "follow_up_slug, previous_follow_up, status, follow_up_state, blocked_at, last_blocked_at, "
    "occurrences) VALUES (?, ?, ?, ?, ?, ?, ?, 'open', 'pending', ?, ?, 1) "
    "ON CONFLICT (slug, branch, sha) DO UPDATE SET reason = excluded.reason, "
    "main_sha = excluded.main_sha, last_blocked_at = excluded.last_blocked_at, "
    "occurrences = o.occurrences + 1, status = 'open', resumed_at = NULL, resolved_at = NULL "
    f"RETURNING {named(BLOCKED)}"
)


class SQLTransaction:
    """The :class:`~mergegate.statemachine.Transaction` of the SQL stores.

    Valid only inside the store's ``transaction()`` block, which holds the
    store's lock, begins, and commits or rolls back.
    """

    def __init__(self, cursor: Any, dialect: Dialect, mapper: Mapper) -> None:
        # One cursor for the whole transaction: making one per statement costs
        # more client time than the statement itself.
        self._cursor = cursor
        self._d = dialect
        self._q = dialect.queries
        self._map = mapper
        self._locked: set[int] = set()
        self._candidates: dict[str, Candidate | None] = {}
        self._blocked: dict[CandidateKey, BlockedRecord | None] = {}
        self._latest: dict[str, str | None] = {}
        # Who holds a follow-up slug: a slug rule asks, then the Engine asks again.
        self._owners: dict[str, CandidateKey | None] = {}
        # Rows inserted by this transaction, waiting for their creating entry.
        self._created: set[int] = set()
        #: Set by the store when ``COMMIT`` is sent: a lost connection then
        #: leaves the outcome unknown.
        self.committing = False
        #: What a conflict the database reports later is about: (identity, seq).
        self.context: tuple[CandidateKey, int] | None = None
        #: The queue controls in force, once read; set when a control is logged
        #: (the store then wakes the integrators waiting on the controls).
        self._controls: QueueControls | None = None
        self.controlled = False

    def execute(self, query: str, params: tuple[Any, ...] = ()) -> None:
        """Run a statement whose result nobody needs."""
        self._cursor.execute(self._q[query], params)

    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Every row of a read."""
        return list(self._cursor.execute(self._q[query], params).fetchall())

    def _one(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        return self._cursor.execute(self._q[query], params).fetchone()

    def _lock(self, *parts: str) -> None:
        key = self._d.lock_key(*parts)
        if key is not None and key not in self._locked:
            self._locked.add(key)
            self._cursor.execute(self._d.lock_sql, (key,))

    # -- the Transaction protocol --------------------------------------------

    def candidate(self, slug: str) -> Candidate | None:
        if slug in self._candidates:
            return self._candidates[slug]
        if self._d.lock_sql:
            self._lock("candidate", slug)
        prefetch = self._d.prefetch
        row = self._one(_CANDIDATE_WITH_BLOCKED if prefetch else CANDIDATE_BY_SLUG, (slug,))
        found = None
        if row is not None:
            found = self._map.candidate(row)
            if prefetch:
                blocked = None if row["b_id"] is None else self._map.blocked(row, "b_")
                self._blocked[found.key] = blocked
                self._latest[slug] = row["latest_follow_up"]
        self._candidates[slug] = found
        return found

    def claim_next(self) -> str | None:
        if not self._d.lock_sql:
            # SQLite: BEGIN IMMEDIATE already keeps every other writer out.
            if self.queue_controls().paused is not None:
                return None
            row = self._one(QUEUE_HEAD + self._d.claim_clause)
            return None if row is None else str(row[0])
        # Claims take turns on one advisory lock of the queue, held to commit:
        # a claimer that loses the lease race rolls back and the next one
        # reads the same head, never the one behind it (SKIP LOCKED did).
        self._lock("queue")
        if self.queue_controls().paused is not None:
            return None
        slug = None
        for _ in range(8):
            row = self._one(QUEUE_HEAD + self._d.claim_clause)
            if row is None or str(row[0]) == slug:
                return slug if row is not None else None
            # Hold the head's own lock, then look again: a move of it (a
            # withdraw, a supersede) that committed meanwhile is seen now.
            slug = str(row[0])
            self._lock("candidate", slug)
        return slug

    def queue_controls(self, *, for_update: bool = False) -> QueueControls:
        """The controls in force; ``for_update`` (a control's own check) takes the
        queue's lock first, see :mod:`.controls` for why a move's read does not."""
        if for_update and self._d.lock_sql:
            self._lock("queue")
        elif self._controls is not None:
            return self._controls
        self._controls = controls_in_force(self._d, self.rows(CONTROLS_IN_FORCE))
        return self._controls

    def log_control(
        self,
        action: Control,
        *,
        actor: str,
        at: datetime,
        why: str | None,
        slug: str | None = None,
        requeue: bool = False,
    ) -> ControlEntry:
        if self._d.lock_sql:
            self._lock("queue")
        d = self._d
        params = (action.value, d.text_in(actor), d.time_in(at), d.text_in(why), slug)
        row = self._one(INSERT_CONTROL, (*params, d.true if requeue else d.false))
        self._controls = None
        self.controlled = True
        return control_entry(d, row)

    def promote(self, candidate_id: int) -> None:
        if self._d.lock_sql:
            self._lock("queue")
        self.execute(PROMOTE, (candidate_id,))

    def find_candidate(self, key: CandidateKey) -> Candidate | None:
        row = self._one(CANDIDATE_BY_KEY, (key.slug, key.branch, key.sha))
        return None if row is None else self._map.candidate(row)

    def insert_candidate(self, key: CandidateKey, at: datetime, step: Step) -> Candidate:
        self.context = (key, 0)
        stamp = self._d.time_in(at)
        state = step.dest
        params = (
            key.slug,
            key.branch,
            key.sha,
            state.value,
            stamp,
            stamp,
            self._d.true if step.active else self._d.false,
            self._d.true if step.queued else self._d.false,
        )
        if self._d.returning:
            new_id = self._one(_INSERT_CANDIDATE + " RETURNING id", params)[0]
        else:
            new_id = self._cursor.execute(self._q[_INSERT_CANDIDATE], params).lastrowid
        created = Candidate(new_id, key, state, 0, at, at)
        self._candidates[key.slug] = created
        self._blocked[key] = None
        self._created.add(new_id)
        return created

    def append(self, candidate: Candidate, entry: Transition, step: Step) -> Candidate:
        self.context = (candidate.key, candidate.seq)
        d = self._d
        stamp = d.time_in(entry.at)
        dest = entry.dest
        sha_changed = entry.sha != candidate.key.sha
        # A created row was inserted with its flags; a move writes those it changes.
        created = candidate.seq == 0
        active_changed = step.active_changes and not created
        queued_changed = step.queued_changes and not created
        sets: list[Any] = [dest.value, entry.seq, stamp]
        if sha_changed:
            sets.append(entry.sha)
        if active_changed:
            sets.append(d.true if step.active else d.false)
        if queued_changed:
            sets.append(d.true if step.queued else d.false)
        shape = (sha_changed, active_changed, queued_changed)
        logged = (
            entry.seq,
            entry.event.value,
            entry.source.value if entry.source else None,
            dest.value,
            entry.sha,
            d.text_in(entry.actor),
            stamp,
            d.text_in(entry.reason),
            d.text_in(entry.idempotency_key),
            entry.request_digest,
            d.text_in(entry.lease_owner),
            entry.main_sha,
            d.text_in(entry.interrupted),
        )
        if created and candidate.id in self._created:
            # Inserted above as this entry leaves it (see _INSERT_CANDIDATE), unless
            # the caller's entry says otherwise: then the row is corrected.
            self._created.discard(candidate.id)
            self.execute(_FIRST_ENTRY, (candidate.id, *logged))
            if sha_changed or dest is not candidate.state or entry.at != candidate.updated_at:
                self.execute(_MOVES[shape], (*sets, candidate.id))
        elif d.writes_in_cte:
            self.execute(_MOVES_CTE[shape], (*sets, candidate.id, candidate.seq, *logged))
        else:
            self.execute(_APPEND, (candidate.id, candidate.seq, *logged))
            self.execute(_MOVES[shape], (*sets, candidate.id))
        if step.reenters:
            self.execute(_TO_THE_BACK if sha_changed else _REENTER, (candidate.id,))
        key = candidate.key
        if entry.sha != key.sha:
            key = CandidateKey(key.slug, key.branch, entry.sha)
        moved = Candidate(
            candidate.id, key, entry.dest, entry.seq, candidate.submitted_at, entry.at
        )
        self._candidates[key.slug] = moved
        return moved

    def transition_by_idempotency_key(self, candidate_id: int, key: str) -> Transition | None:
        row = self._one(
            f"SELECT {named(TRANSITION)} FROM transitions "
            "WHERE candidate_id = ? AND idempotency_key = ?",
            (candidate_id, self._d.text_in(key)),
        )
        return None if row is None else self._map.transition(row)

    def transition_by_key(self, key: str) -> Transition | None:
        row = self._one(
            f"SELECT {named(TRANSITION)} FROM transitions WHERE idempotency_key = ?",
            (self._d.text_in(key),),
        )
        return None if row is None else self._map.transition(row)

    def blocked_record(self, key: CandidateKey) -> BlockedRecord | None:
        if key not in self._blocked:
            row = self._one(BLOCKED_BY_KEY, (key.slug, key.branch, key.sha))
            self._blocked[key] = None if row is None else self._map.blocked(row)
        return self._blocked[key]

    def follow_up_owner(self, follow_up_slug: str) -> CandidateKey | None:
        if follow_up_slug not in self._owners:
            row = self._one(
                "SELECT slug, branch, sha FROM integration_blocked_outcomes "
                "WHERE follow_up_slug = ?",
                (follow_up_slug,),
            )
            self._owners[follow_up_slug] = None if row is None else _key(row[0], row[1], row[2])
        return self._owners[follow_up_slug]

    def latest_follow_up(self, slug: str) -> str | None:
        if slug not in self._latest:
            row = self._one(
                "SELECT follow_up_slug FROM integration_blocked_outcomes WHERE slug = ? "
                "ORDER BY id DESC LIMIT 1",
                (slug,),
            )
            self._latest[slug] = None if row is None else str(row[0])
        return self._latest[slug]

    def record_block(
        self,
        key: CandidateKey,
        report: BlockedReport,
        *,
        seq: int,
        at: datetime,
        follow_up_slug: str,
        previous_follow_up: str | None,
    ) -> BlockedRecord:
        stamp = self._d.time_in(at)
        row = self._one(
            _UPSERT_BLOCKED,
            (
                key.slug,
                key.branch,
                key.sha,
                report.reason.value,
                report.main_sha,
                follow_up_slug,
                previous_follow_up,
                stamp,
                stamp,
            ),
        )
        record = self._map.blocked(row)
        self.execute(
            "INSERT INTO blocked_evidence (blocked_id, number, seq, at, report) "
            "VALUES (?, ?, ?, ?, ?)",
            (record.id, record.occurrences, seq, stamp, self._d.report_in(report)),
        )
        self.execute(
            "INSERT INTO follow_up_outbox (follow_up_slug, blocked_id, created_at) "
            # A new block of the same identity queues its follow-up again, so a
            # folder or roadmap entry removed as "done" comes back: the gate resets.
            "VALUES (?, ?, ?) ON CONFLICT (follow_up_slug) DO UPDATE SET done_at = NULL",
            (record.follow_up_slug, record.id, stamp),
        )
        self._blocked[key] = record
        self._owners[record.follow_up_slug] = key
        if record.occurrences == 1:
            self._latest[key.slug] = record.follow_up_slug
        return record

    def mark_resolved(self, key: CandidateKey, at: datetime) -> None:
        """Record when the resolver found ``key``'s follow-up resolved (at its resume)."""
        self._blocked.pop(key, None)
        self.execute(
            "UPDATE integration_blocked_outcomes SET resolved_at = ? "
            "WHERE slug = ? AND branch = ? AND sha = ?",
            (self._d.time_in(at), key.slug, key.branch, key.sha),
        )

    def close_blocked(self, key: CandidateKey, at: datetime) -> None:
        self._blocked.pop(key, None)  # read it again if asked: status and resumed_at change
        self.execute(
            "UPDATE integration_blocked_outcomes SET status = 'resumed', resumed_at = ? "
            "WHERE slug = ? AND branch = ? AND sha = ?",
            (self._d.time_in(at), key.slug, key.branch, key.sha),
        )

    def lease(self, name: str) -> Lease | None:
        # The lease row may not exist yet, so a row lock could not stop two
        # integrators from both seeing it free; the dialect's lock can.
        if self._d.lock_sql:
            self._lock("lease", name)
        row = self._one(LEASE_BY_NAME, (name,))
        return None if row is None else self._map.lease(row)

    def put_lease(self, lease: Lease) -> None:
        self.execute(
            _PUT_LEASE,
            (
                lease.name,
                self._d.text_in(lease.owner),
                lease.candidate_id,
                self._d.time_in(lease.acquired_at),
                self._d.time_in(lease.expires_at),
            ),
        )

    def drop_lease(self, name: str, candidate_id: int) -> None:
        self.execute(_DROP_LEASE, (name, candidate_id))

    def drop_chain_lease(self, name: str, owner: str) -> None:
        self.execute(
            "DELETE FROM leases WHERE name = ? AND owner = ? AND candidate_id IS NULL",
            (name, self._d.text_in(owner)),
        )

    # -- store-level writes, each in a transaction of its own ----------------

    def renew_lease(self, name: str, owner: str, expires_at: datetime) -> Lease:
        """Push the expiry of ``owner``'s lease; raises LeaseHeld if it lost it."""
        row = self._one(
            f"UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? "
            f"RETURNING {named(LEASE)}",
            (self._d.time_in(expires_at), name, self._d.text_in(owner)),
        )
        if row is not None:
            return self._map.lease(row)
        held = self._one(LEASE_BY_NAME, (name,))
        if held is None:
            raise LeaseHeld(name, owner, None, lost=True)
        lease = self._map.lease(held)
        raise LeaseHeld(name, lease.owner, lease.expires_at.isoformat())

    def finish_follow_up(
        self, follow_up_slug: str, state: FollowUpState, error: str | None, at: datetime
    ) -> None:
        """Record the result of materializing a follow-up; ``CREATED`` marks its outbox row done."""
        # The outcome row first, then the outbox row: the order record_block
        # writes them in. The other order deadlocks against a concurrent replay.
        self.execute(
            "UPDATE integration_blocked_outcomes SET follow_up_state = ?, "
            "follow_up_error = ? WHERE follow_up_slug = ?",
            (state.value, self._d.text_in(error), follow_up_slug),
        )
        self.execute(
            "UPDATE follow_up_outbox SET attempts = attempts + 1, last_error = ?, "
            "done_at = CASE WHEN ? THEN COALESCE(done_at, ?) ELSE NULL END "
            "WHERE follow_up_slug = ?",
            (
                self._d.text_in(error),
                state is FollowUpState.CREATED,
                self._d.time_in(at),
                follow_up_slug,
            ),
        )
