"""The protocols a store and a hook implement. mergegate ships SQLite and PostgreSQL stores.

The Engine does every read-then-write through one :class:`Transaction`, which
the store opens so that no other writer can change the candidate before it
commits (``BEGIN IMMEDIATE`` on SQLite, a row lock on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from .controls import Control, ControlEntry, QueueControls
from .ledger import Acknowledgement, Approval, StoreIdentity
from .move import Move, Moved
from .records import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    FollowUpJob,
    FollowUpState,
    Guidance,
    Lease,
    Occurrence,
    Outcome,
    Reason,
    Transition,
)
from .states import Event, State
from .table import Step

__all__ = [
    "Guide",
    "Hook",
    "Mover",
    "Resolver",
    "Store",
    "StoreReads",
    "StoreWrites",
    "Transaction",
]


class Transaction(Protocol):
    """One atomic unit of work; everything in it commits together or not at all."""

    def candidate(self, slug: str) -> Candidate | None:
        """The unintegrated candidate holding ``slug``, else its newest integrated one.

        The row stays locked against other writers until the transaction ends.
        """

    def claim_next(self) -> str | None:
        """The slug of the queue's head (see :meth:`Store.queue`), claimed until commit.

        ``None`` when the queue is empty or paused (:meth:`queue_controls`).
        Claims are serialized: a concurrent claim waits for this transaction
        and then reads the head anew, so none passes the head by (SQLite's
        ``BEGIN IMMEDIATE``; PostgreSQL's advisory lock on the queue).
        """

    def queue_controls(self) -> QueueControls:
        """The pause and the drain in force, as this transaction sees them."""

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
        """Append a control to the queue-controls log and return it, with its id.

        Serialized with claims and with other controls (the queue's lock on
        PostgreSQL), so the newest pause or unpause is the one in force.
        """

    def promote(self, candidate_id: int) -> None:
        """Give the candidate the queue's first place: a position before every active one."""

    def find_candidate(self, key: CandidateKey) -> Candidate | None:
        """The newest candidate with exactly this identity, in any state."""

    def insert_candidate(self, key: CandidateKey, at: datetime, step: Step) -> Candidate:
        """Create a candidate with ``seq`` 0 (its creating entry follows), flagged as ``step``
        leaves it (``step.dest``, ``step.active``, ``step.queued``), at the queue's back."""

    def append(self, candidate: Candidate, entry: Transition, step: Step) -> Candidate:
        """Append ``entry`` (whose seq must be ``candidate.seq + 1``) and move the candidate.

        The candidate's row takes ``step``'s flags (``active``, ``queued``) and,
        when ``step.reenters``, a place at the back of the queue. Raises
        ConcurrencyConflict if the candidate's seq is no longer ``candidate.seq``.
        """

    def mark_resolved(self, key: CandidateKey, at: datetime) -> None:
        """Record when ``key``'s follow-up was found resolved (by the resume that closes it)."""

    def transition_by_idempotency_key(self, candidate_id: int, key: str) -> Transition | None:
        """The entry an earlier call logged with this idempotency key, if any."""

    def transition_by_key(self, key: str) -> Transition | None:
        """The entry logged with idempotency key ``key``, for any candidate: a key is global."""

    def blocked_record(self, key: CandidateKey) -> BlockedRecord | None:
        """The blocked outcome row of ``key``, if it was ever blocked."""

    def follow_up_owner(self, follow_up_slug: str) -> CandidateKey | None:
        """Which identity a follow-up slug is already assigned to."""

    def latest_follow_up(self, slug: str) -> str | None:
        """The newest follow-up slug of any blocked outcome of this work item."""

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
        """Upsert the blocked outcome, append the occurrence, enqueue the follow-up."""

    def close_blocked(self, key: CandidateKey, at: datetime) -> None:
        """Mark ``key``'s blocked outcome as resumed."""

    def lease(self, name: str) -> Lease | None:
        """The integration lease ``name``, expired or not."""

    def put_lease(self, lease: Lease) -> None:
        """Take or renew the lease ``lease.name``."""

    def drop_lease(self, name: str, candidate_id: int) -> None:
        """Release ``name`` if it is held for ``candidate_id``."""

    def drop_chain_lease(self, name: str, owner: str) -> None:
        """Release ``name`` if ``owner`` holds it for a chain (for no one candidate)."""


class StoreReads(Protocol):
    """The read side of a store: what the queue, the log and the outcomes hold now.

    Reads never wait on a writer for long and never change anything; the CLI's
    read commands, the status page and the change feed use only these.
    """

    backend: str

    def candidate(self, slug: str) -> Candidate | None:
        """The active candidate holding ``slug``, else its newest integrated one."""

    def candidate_by_id(self, candidate_id: int) -> Candidate | None:
        """The candidate with this id."""

    def candidates(self, state: State | None = None) -> list[Candidate]:
        """All candidates (in ``state``), oldest submission first."""

    def next_candidate(self) -> Candidate | None:
        """The queue's head: the first of :meth:`queue`, the one ``claim_next`` takes."""

    def queue(self) -> list[Candidate]:
        """The ``pending`` and ``retry`` candidates in the order claims take them.

        The order is the stored queue position: given at submit, kept by every
        move (a requeued chain link keeps its place), given anew by ``resume``
        (a re-entry goes to the back). See docs/lifecycle.md, "Queue order".
        """

    def queue_controls(self) -> QueueControls:
        """The pause and the drain in force (see :mod:`.controls`)."""

    def control_log(self, limit: int = 20, *, slug: str | None = None) -> list[ControlEntry]:
        """The newest (at most ``limit``) entries of the queue-controls log, oldest first;
        only those naming ``slug`` (its promotes) when given."""

    def active_candidates(self) -> list[Candidate]:
        """The candidates not finished yet (the queue, the applying, the blocked), by id.

        Read through an index of the active ones: its cost is the queue's, not the log's.
        """

    def candidates_by_ids(self, ids: Sequence[int]) -> list[Candidate]:
        """The candidates with these ids (those that exist), by id."""

    def log_since(self, since: datetime) -> list[Transition]:
        """Every log entry at or after ``since``, in the order they were written."""

    def recent_apply_seconds(self, limit: int) -> list[float]:
        """How long the newest (at most ``limit``) integrations took from start_apply, newest
        first; only recent log entries are looked at, so the answer may be short or empty."""

    def slugs(self, prefix: str = "", limit: int = 200) -> list[str]:
        """The distinct slugs starting with ``prefix``, sorted, at most ``limit`` of them."""

    def last_move_at(self) -> datetime | None:
        """When the newest log entry was written; ``None`` for an empty log."""

    def history(self, candidate_id: int, since: datetime | None = None) -> list[Transition]:
        """The candidate's log entries, oldest first."""

    def history_of(self, slug: str, since: datetime | None = None) -> list[Transition]:
        """The log entries of every candidate that held ``slug``, oldest first."""

    def log(self) -> Iterator[Transition]:
        """Every log entry, grouped by candidate and ordered by seq."""

    def edge_counts(self) -> dict[tuple[State | None, Event, State], int]:
        """How often each move was taken, read from the log."""

    def blocked_record(self, key: CandidateKey) -> BlockedRecord | None:
        """The blocked outcome row of ``key``."""

    def blocked_records(
        self,
        since: datetime | None = None,
        reason: Reason | None = None,
        *,
        slug: str | None = None,
        status: str | None = None,
    ) -> list[BlockedRecord]:
        """Blocked outcomes, newest last block first; only ``slug``'s (by index) or only
        those with ``status`` (``open``: not resumed yet) when given."""

    def occurrences(self, blocked_id: int) -> list[Occurrence]:
        """The evidence history of one blocked outcome, oldest first."""

    def follow_up_jobs(self, *, include_done: bool = False) -> list[FollowUpJob]:
        """Outbox rows, oldest first."""

    def blocked_record_by_id(self, blocked_id: int) -> BlockedRecord | None:
        """The blocked outcome row with this id."""

    def leases(self) -> list[Lease]:
        """Every integration lease."""

    def integrity_problems(self) -> list[str]:
        """The store's own consistency check; empty when sound."""

    def identity(self) -> StoreIdentity | None:
        """Which repository this store serves, and its own id; ``None`` until ``init`` binds it."""

    def acknowledgements(self) -> list[Acknowledgement]:
        """Every acknowledged outside move, oldest first."""

    def approval(self, slug: str, sha: str) -> Approval | None:
        """The approval of ``slug`` at exactly ``sha``, if an operator gave one."""

    def approvals(self) -> list[Approval]:
        """Every approval, oldest first."""


class StoreWrites(Protocol):
    """The write side of a store: the one transaction a move runs in, and the few
    writes that are not moves (a lease's renewal, a follow-up's result, the
    repository binding, acknowledgements and approvals), each atomic."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """Open a write transaction; commit on normal exit, roll back on error."""

    def finish_follow_up(
        self, follow_up_slug: str, state: FollowUpState, error: str | None
    ) -> None:
        """Record the result of materializing a follow-up; ``CREATED`` marks its outbox row done."""

    def renew_lease(self, name: str, owner: str, expires_at: datetime) -> Lease:
        """Push the expiry of ``owner``'s lease; raises LeaseHeld if ``owner`` lost it."""

    def bind_repository(self, repository: str, *, actor: str, at: datetime) -> StoreIdentity:
        """Bind the store to ``repository`` (its root commit) with a new store id, once.

        Returns the binding the store holds afterwards: the new one, or the
        one made earlier (for this repository or another: the caller compares).
        """

    def acknowledge(self, sha: str, why: str, *, actor: str, at: datetime) -> Acknowledgement:
        """Log that commit ``sha`` moved ``main`` outside the queue on purpose.

        Returns the stored acknowledgement: this one, or an earlier one of the
        same commit, which is kept as it was (the log is append-only).
        """

    def approve(self, slug: str, sha: str, why: str, *, actor: str, at: datetime) -> Approval:
        """Log that candidate ``slug`` at exactly ``sha`` may change the configuration.

        Returns the stored approval: this one, or an earlier one of the same
        slug and sha, which is kept as it was (the log is append-only).
        """

    def close(self) -> None:
        """Release the connection."""


class Store(StoreReads, StoreWrites, Protocol):
    """A durable transition log with its blocked outcomes, outbox and leases.

    Its two sides are :class:`StoreReads` and :class:`StoreWrites`; a store
    may also offer a one-piece fast path (:class:`Mover`). The contract every
    store passes is ``mergegate.persistence.contract.StoreContract``.
    """


class Mover(Protocol):
    """What a :class:`Store` may also offer: a plain move carried out in one piece.

    The Engine calls ``move`` first for every request that qualifies (see
    :mod:`mergegate.statemachine.move`); a store without it is used through
    :meth:`Store.transaction` alone. The PostgreSQL store offers it (it saves a
    round trip); the SQLite store does not (it has none to save).
    """

    def move(self, move: Move) -> Moved | None:
        """Carry out ``move`` in one transaction, or return ``None`` having written nothing.

        Accept only the happy case: the candidate exists (or, creating, no
        candidate holds the slug), it has not moved since ``move.at`` (its
        ``updated_at`` is not later: a history never goes back in time),
        ``move.step`` has a step from its state, ``expected_seq`` (if given) is
        its seq, and a lease-taking step finds the lease free. Decline
        everything else, without raising.
        """


class Hook(Protocol):
    """Runs after a call's commit; may do side effects and enrich the outcome."""

    def after_commit(self, outcome: Outcome) -> Outcome:
        """Return ``outcome``, possibly refreshed; must not raise for expected failures."""


class Guide(Protocol):
    """Renders resume guidance from stored records only."""

    def render(self, candidate: Candidate, record: BlockedRecord) -> Guidance:
        """Deterministic guidance for a blocked candidate."""


class Resolver(Protocol):
    """Tells whether a follow-up's remediation is done."""

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """``None`` when resolved; otherwise why not, in a few words."""
