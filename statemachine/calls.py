"""The lifecycle calls an orchestrator makes: each builds one :class:`Request` and fires it.

A call validates its arguments into a Request, the one typed description of
what the caller asks for. The Engine fires it in a transaction of its own; a
Batch fires it in the transaction it shares. Neither is imported here: both
implement :meth:`Calls.fire`, so this module depends on records only.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs

from ._interruptions import INTERRUPTED
from .errors import InvalidInput
from .records import BlockedReport, Candidate, CandidateKey, Outcome
from .states import Event

if TYPE_CHECKING:
    from .table import Table
from ._validation import FOLLOW_UP_SLUG_MAX, check_sha, check_slug, check_text

__all__ = ["Calls", "Request"]


def _opt(check: Any, field: str) -> Any:
    def validate(_i: object, _a: object, value: str | None) -> None:
        if value is not None:
            check(value, field=field)

    return validate


def _follow_up(_i: object, _a: object, value: str | None) -> None:
    if value is not None:
        check_slug(value, field="follow-up slug", limit=FOLLOW_UP_SLUG_MAX)


def _reason(_i: object, _a: object, value: str | None) -> None:
    if value is not None:
        check_text(value, field="force reason")
        if not value.strip():
            raise InvalidInput("force reason", value, "say why the resume is forced")


def _why(_i: object, _a: object, value: str | None) -> None:
    if value is not None:
        check_text(value, field="withdraw reason")
        if not value.strip():
            raise InvalidInput("withdraw reason", value, "say why the candidate is withdrawn")


def _plain(value: object) -> object:
    """A JSON-ready, order-stable form of a payload value."""
    if attrs.has(type(value)):
        fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(type(value))  # type: ignore[arg-type]
        return {f.name: _plain(getattr(value, f.name)) for f in fields}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # enums (StrEnum) and datetimes: their text is their identity


# How the call is delivered or where it points, not what it asks for: a retry may
# change these and still be the same request.
_NOT_PAYLOAD = {"payload": False}
# A payload field added later: it enters the digest only when it is set.
_OMIT_NONE = {"omit_none": True}


@attrs.frozen
class Request:
    """What one call asks for: the event, the candidate, and what its rule's effects consume.

    Everything but the slug, the actor, ``expected_seq`` and ``idempotency_key``
    is the request's payload; :meth:`digest` fingerprints it, so that an
    idempotency key reused with a different payload is recognised and refused.
    """

    event: Event
    slug: str = attrs.field(metadata=_NOT_PAYLOAD)
    key: CandidateKey | None = None
    owner: str | None = attrs.field(default=None, validator=_opt(check_text, "lease owner"))
    ttl: timedelta | None = None
    report: BlockedReport | None = None
    main_sha: str | None = attrs.field(default=None, validator=_opt(check_sha, "main sha"))
    new_sha: str | None = attrs.field(default=None, validator=_opt(check_sha, "new sha"))
    force_reason: str | None = attrs.field(default=None, validator=_reason)
    why: str | None = attrs.field(default=None, validator=_why, metadata=_OMIT_NONE)
    #: Why the move is made, in the caller's words (resume --note); logged as the note.
    remark: str | None = attrs.field(default=None, validator=_opt(check_text, "note"))
    #: Why an integrator's apply of this candidate was cut short (a requeue or
    #: an interrupt that settles it): logged in the entry's own field, so a run
    #: of interruptions is counted from facts, not from notes.
    interrupted: str | None = attrs.field(
        default=None, validator=_opt(check_text, "interruption"), metadata=_OMIT_NONE
    )
    #: An explicit follow-up slug for a block; ``None`` lets the Engine's slug rule choose.
    #: Left out of the digest when ``None``, so digests stored before it existed still match.
    follow_up: str | None = attrs.field(default=None, validator=_follow_up, metadata=_OMIT_NONE)
    actor: str | None = attrs.field(default=None, metadata=_NOT_PAYLOAD)
    expected_seq: int | None = attrs.field(default=None, metadata=_NOT_PAYLOAD)
    idempotency_key: str | None = attrs.field(default=None, metadata=_NOT_PAYLOAD)

    @property
    def note(self) -> str | None:
        """The log entry's note: what the payload says, in a few words."""
        if self.owner is not None:
            return f"lease owner={self.owner}"
        if self.main_sha is not None:
            return f"main={self.main_sha}"
        if self.report is not None:
            return self.report.reason.value
        if self.force_reason is not None:
            return f"forced: {self.force_reason}"
        if self.interrupted is not None and self.why is None:
            return f"{INTERRUPTED}{self.interrupted}"
        if self.why is not None:
            return self.why
        return self.remark

    def digest(self) -> str:
        """A stable fingerprint of the payload: same request, same digest, in any process."""
        payload = {
            f.name: _plain(getattr(self, f.name))
            for f in attrs.fields(Request)
            if f.metadata.get("payload", True)
            and not (f.metadata.get("omit_none") and getattr(self, f.name) is None)
        }
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        # Imported here: only a call with an idempotency key needs a digest, and
        # loading OpenSSL's hashes costs every command a few milliseconds.
        import hashlib  # noqa: PLC0415

        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class Calls:
    """The named calls, shared by the Engine (one transaction each) and a Batch.

    Every call takes ``actor=``: who the log entry says made the move, for this
    call only (the Engine's ``actor`` otherwise).
    """

    def fire(self, request: Request) -> Outcome:
        """Fire one request; the Engine and the Batch say in which transaction."""
        raise NotImplementedError

    def submit(
        self,
        key: CandidateKey,
        *,
        actor: str | None = None,
        idempotency_key: str | None = None,
        supersede: bool = False,
    ) -> Outcome:
        """Add ``key`` as ``pending``; a repeat of an existing identity returns it unchanged.

        With ``supersede``, a slug already queued (``pending`` or ``retry``) on the
        same branch at another sha is superseded to ``key.sha`` instead (the
        branch was force-pushed; a logged move), as ``mergegate submit`` does; if
        the candidate moved since it was read (an apply took it), the call
        raises ConcurrencyConflict rather than replace a sha in flight.
        Raises DuplicateCandidate if another unintegrated identity holds the slug.
        """
        if supersede:
            held = self._current(key.slug)
            if (
                held is not None
                and held.key.branch == key.branch
                and held.key.sha != key.sha
                and self._table().rule(held.state, Event.SUPERSEDE) is not None
            ):
                return self.supersede(
                    key.slug,
                    new_sha=key.sha,
                    expected_seq=held.seq,
                    idempotency_key=idempotency_key,
                    actor=actor,
                )
        return self.fire(
            Request(Event.SUBMIT, key.slug, key=key, actor=actor, idempotency_key=idempotency_key)
        )

    def _current(self, slug: str) -> Candidate | None:
        """The candidate holding ``slug`` now, as the Engine or the Batch reads it."""
        raise NotImplementedError

    def _table(self) -> Table:
        raise NotImplementedError

    def start_apply(
        self,
        slug: str,
        *,
        owner: str,
        ttl: timedelta | None = None,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Outcome:
        """Take the integration lease for ``owner`` and move the candidate to ``applying``.

        Raises LeaseHeld if another apply holds the lease, even an expired one
        (run :meth:`Engine.recover` first).
        """
        if owner is None:
            raise InvalidInput("lease owner", owner, "name who takes the lease")
        return self.fire(
            Request(
                Event.START_APPLY,
                slug,
                owner=owner,
                ttl=ttl,
                expected_seq=expected_seq,
                idempotency_key=idempotency_key,
                actor=actor,
            )
        )

    def integrate(
        self,
        slug: str,
        *,
        main_sha: str,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Outcome:
        """Record that ``main`` now points at ``main_sha``, which contains the candidate."""
        check_sha(main_sha, field="main sha")
        return self.fire(
            Request(
                Event.INTEGRATE,
                slug,
                main_sha=main_sha,
                expected_seq=expected_seq,
                idempotency_key=idempotency_key,
                actor=actor,
            )
        )

    def block(
        self,
        slug: str,
        report: BlockedReport,
        *,
        follow_up: str | None = None,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Outcome:
        """Record a blocked apply, or replay one (from ``blocked`` or ``remediating``).

        ``follow_up`` names the follow-up slug of a first block explicitly instead
        of the Engine's slug rule; a replay keeps the slug recorded first.
        Raises InvalidInput if another identity's follow-up holds that slug.
        """
        if not isinstance(report, BlockedReport):
            raise InvalidInput("blocked report", report, "give a BlockedReport")
        return self.fire(
            Request(
                Event.BLOCK,
                slug,
                report=report,
                follow_up=follow_up,
                expected_seq=expected_seq,
                idempotency_key=idempotency_key,
                actor=actor,
            )
        )

    def start_remediation(
        self,
        slug: str,
        *,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Outcome:
        """Move a blocked candidate to ``remediating``."""
        return self.fire(
            Request(
                Event.START_REMEDIATION,
                slug,
                expected_seq=expected_seq,
                idempotency_key=idempotency_key,
                actor=actor,
            )
        )

    def requeue(
        self,
        slug: str,
        *,
        why: str,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """Send an ``applying`` candidate back to ``pending``, logging ``why`` as its note.

        A speculative chain does this to the links it throws away: they are not
        at fault, so they are never blocked, and they will be tested again.
        """
        check_text(why, field="requeue reason")
        return self.fire(
            Request(
                Event.REQUEUE,
                slug,
                why=why,
                expected_seq=expected_seq,
                idempotency_key=idempotency_key,
            )
        )

    def resume(
        self,
        slug: str,
        *,
        new_sha: str | None = None,
        force_reason: str | None = None,
        note: str | None = None,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Outcome:
        """Move a remediating candidate to ``retry``, optionally at ``new_sha``.

        Raises FollowUpNotResolved unless the follow-up is resolved or
        ``force_reason`` (which is logged) is given. ``note`` is logged as the
        entry's note (a forced resume logs its reason instead); it forces nothing.
        """
        return self.fire(
            Request(
                Event.RESUME,
                slug,
                new_sha=new_sha,
                force_reason=force_reason,
                remark=note,
                expected_seq=expected_seq,
                idempotency_key=idempotency_key,
                actor=actor,
            )
        )

    def supersede(
        self,
        slug: str,
        *,
        new_sha: str,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Outcome:
        """Replace the sha of a ``pending`` or ``retry`` candidate (its branch was force-pushed).

        The move is logged; the old sha is no longer the candidate's, so it never integrates.
        """
        check_sha(new_sha, field="new sha")
        return self.fire(
            Request(
                Event.SUPERSEDE,
                slug,
                new_sha=new_sha,
                expected_seq=expected_seq,
                idempotency_key=idempotency_key,
                actor=actor,
            )
        )

    def withdraw(
        self,
        slug: str,
        *,
        why: str,
        expected_seq: int | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Outcome:
        """Take a candidate that is not ``applying`` out of the queue, to ``withdrawn``.

        ``why`` is logged. A blocked outcome is closed without its follow-up being
        resolved; the slug, and the identity, are free for a new submit.
        """
        if why is None or not str(why).strip():
            raise InvalidInput("withdraw reason", why, "say why the candidate is withdrawn")
        return self.fire(
            Request(
                Event.WITHDRAW,
                slug,
                why=why,
                expected_seq=expected_seq,
                idempotency_key=idempotency_key,
                actor=actor,
            )
        )
