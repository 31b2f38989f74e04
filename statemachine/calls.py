"""The lifecycle calls an orchestrator makes, shared by the Engine and a Batch.

Each call validates its arguments, then hands the Engine an operation to run
inside a store transaction: the Engine runs it in a transaction of its own, a
Batch in the one transaction it shares.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from .errors import InvalidInput
from .records import BlockedReport, CandidateKey, Outcome
from .states import Event
from .store import Transaction
from .validation import check_sha, check_text

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Op"]

Op = Callable[[Transaction], Outcome]


class _Moves:
    """The lifecycle calls, shared by the Engine (one transaction each) and a Batch."""

    _engine: Engine

    def _execute(self, op: Op) -> Outcome:
        raise NotImplementedError

    def submit(
        self, key: CandidateKey, *, actor: str | None = None, idempotency_key: str | None = None
    ) -> Outcome:
        """Add ``key`` as ``pending``; a repeat of an existing identity returns it unchanged.

        Raises DuplicateCandidate if another unintegrated identity holds the slug.
        """
        return self._execute(lambda tx: self._engine._submit(tx, key, actor, idempotency_key))

    def start_apply(
        self,
        slug: str,
        *,
        owner: str,
        ttl: timedelta | None = None,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Take the integration lease for ``owner`` and move the candidate to ``applying``.

        Raises LeaseHeld if another apply holds the lease, even an expired one
        (run :meth:`Engine.recover` first).
        """
        e = self._engine
        return self._execute(
            lambda tx: e._start_apply(tx, slug, owner, ttl, expected_seq, idempotency_key)
        )

    def integrate(
        self,
        slug: str,
        *,
        main_sha: str,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Record that ``main`` now points at ``main_sha``, which contains the candidate."""
        check_sha(main_sha, field="main sha")
        e = self._engine

        def op(tx: Transaction) -> Outcome:
            return e._release(
                tx,
                e._move(
                    tx,
                    slug,
                    Event.INTEGRATE,
                    expected_seq,
                    idempotency_key,
                    note=f"main={main_sha}",
                ),
            )

        return self._execute(op)

    def block(
        self,
        slug: str,
        report: BlockedReport,
        *,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Record a blocked apply, or replay one (from ``blocked`` or ``remediating``)."""
        e = self._engine
        return self._execute(
            lambda tx: e._block(tx, slug, report, Event.BLOCK, expected_seq, idempotency_key)
        )

    def start_remediation(
        self, slug: str, *, expected_seq: int | None = None, idempotency_key: str | None = None
    ) -> Outcome:
        """Move a blocked candidate to ``remediating``."""
        e = self._engine
        return self._execute(
            lambda tx: e._outcome(
                tx, e._move(tx, slug, Event.START_REMEDIATION, expected_seq, idempotency_key)
            )
        )

    def resume(
        self,
        slug: str,
        *,
        new_sha: str | None = None,
        force_reason: str | None = None,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Move a remediating candidate to ``retry``, optionally at ``new_sha``.

        Raises FollowUpNotResolved unless the follow-up is resolved or
        ``force_reason`` (which is logged) is given.
        """
        if new_sha is not None:
            check_sha(new_sha, field="new sha")
        if force_reason is not None:
            check_text(force_reason, field="force reason")
            if not force_reason.strip():
                raise InvalidInput("force reason", force_reason, "say why the resume is forced")
        e = self._engine
        return self._execute(
            lambda tx: e._resume(tx, slug, new_sha, force_reason, expected_seq, idempotency_key)
        )
