"""The write half of every SQL store: one transaction, written once.

:class:`SQLTransaction` is the :class:`~mergegate.statemachine.Transaction` of
the SQL stores. This module holds its moves: reading a candidate, inserting
one and appending a log entry, which sets the candidate's state and flags as
the table's compiled step says. The other parts are the queue's
(:mod:`.txqueue`), the blocked outcomes' (:mod:`.txblocked`) and the lease's
(:mod:`.txleases`), over the shared cursor and cache of :mod:`.txbase`.

No write here needs a row count: a stale move fails a constraint inside its
own statement (see :meth:`SQLTransaction.append`), and the store turns that
failure into ConcurrencyConflict using :attr:`SQLTransaction.context`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mergegate.statemachine import Candidate, CandidateKey, Reason, Transition
from mergegate.statemachine.extension import Step

from .dialect import NEXT_QUEUE_POS
from .rows import BLOCKED, CANDIDATE, TRANSITION, named
from .txblocked import BlockedWrites
from .txleases import LeaseWrites
from .txqueue import QueueWrites

__all__ = ["SQLTransaction"]

# The active candidate first, else the newest integrated one.
CANDIDATE_BY_SLUG = (
    f"SELECT {named(CANDIDATE)} FROM candidates WHERE slug = ? "
    "ORDER BY active DESC, id DESC LIMIT 1"
)
CANDIDATE_BY_KEY = (
    f"SELECT {named(CANDIDATE)} FROM candidates "
    "WHERE slug = ? AND branch = ? AND sha = ? ORDER BY id DESC LIMIT 1"
)
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


class SQLTransaction(QueueWrites, BlockedWrites, LeaseWrites):
    """The :class:`~mergegate.statemachine.Transaction` of the SQL stores.

    Valid only inside the store's ``transaction()`` block, which holds the
    store's lock, begins, and commits or rolls back.
    """

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
