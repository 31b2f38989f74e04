"""The immutable records mergegate stores and returns.

Validators run on construction, so a record that exists is a valid record: an
identity with a hostile slug, or a report without its required evidence, cannot
be built at all.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

import attrs

from ._validation import (
    FOLLOW_UP_SLUG_MAX,
    TEXT_CAP,
    attrs_validator,
    cap_text,
    check_branch,
    check_relpath,
    check_sha,
    check_slug,
    check_text,
    short_sha,
)
from .actions import Action
from .errors import InvalidInput
from .states import Event, State

__all__ = [
    "BlockedRecord",
    "BlockedReport",
    "Candidate",
    "CandidateKey",
    "CheckAttempt",
    "CheckResult",
    "Evidence",
    "FollowUpJob",
    "FollowUpState",
    "Guidance",
    "HookFailure",
    "Lease",
    "Occurrence",
    "Outcome",
    "Reason",
    "Transition",
]


class Reason(enum.StrEnum):
    """The closed taxonomy of why an apply was blocked (see docs/blocked-payload.md)."""

    MERGE_CONFLICT = "merge_conflict"
    CHECKS_FAILED = "checks_failed"
    MAIN_MOVED = "main_moved"
    PRECONDITION_FAILED = "precondition_failed"
    APPLY_INTERRUPTED = "apply_interrupted"
    PUSH_REJECTED = "push_rejected"
    EXTERNAL = "external"
    CHECKS_TIMED_OUT = "checks_timed_out"
    #: The candidate changes the integrator's own configuration: held, before any
    #: check runs, until an operator approves that exact sha (docs/configuration.md).
    CONFIG_CHANGED = "config_changed"


_T = TypeVar("_T")


def _optional_text(value: str | None) -> str | None:
    return None if value is None or value == "" else cap_text(value)


def _tail(value: str) -> str:
    # Output tails keep their end: the last lines are where a failure shows.
    if len(value) <= TEXT_CAP:
        return value
    return (
        f"[... mergegate: {len(value) - TEXT_CAP} earlier characters cut ...]\n" + value[-TEXT_CAP:]
    )


def _many(value: Iterable[_T], what: str) -> tuple[_T, ...]:
    # A lone string is iterable too: "src/a.py" would become eight one-letter paths.
    if isinstance(value, str | bytes):
        raise InvalidInput(what, value, "give a list, not a single string")
    return tuple(value)


def _sorted_paths(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(_many(value, "evidence paths"))))


def _checks(value: Iterable[CheckResult]) -> tuple[CheckResult, ...]:
    return _many(value, "evidence checks")


def _shas(value: Iterable[str]) -> tuple[str, ...]:
    return _many(value, "main attempts")


def _check_text_opt(_i: object, a: attrs.Attribute[str | None], v: str | None) -> None:
    if v is not None:
        check_text(v, field=a.name)


@attrs.frozen
class CandidateKey:
    """A candidate's identity: one work item's branch at one commit."""

    slug: str = attrs.field(validator=attrs_validator(check_slug))
    branch: str = attrs.field(validator=attrs_validator(check_branch))
    sha: str = attrs.field(validator=attrs_validator(check_sha))

    def __str__(self) -> str:
        return f"{self.slug} ({self.branch}@{short_sha(self.sha)})"


@attrs.frozen
class Candidate:
    """The current, stored view of a candidate; ``seq`` counts its log entries."""

    id: int
    key: CandidateKey
    state: State
    seq: int
    submitted_at: datetime
    updated_at: datetime


@attrs.frozen
class Transition:
    """One entry of the append-only transition log."""

    candidate_id: int
    seq: int
    event: Event
    source: State | None
    dest: State
    sha: str
    actor: str = attrs.field(validator=attrs_validator(check_text))
    at: datetime
    reason: str | None = attrs.field(default=None, validator=_check_text_opt)
    idempotency_key: str | None = None
    #: A digest of the request that carried ``idempotency_key``, so that a repeat
    #: of the key with a different request is refused instead of silently dropped.
    request_digest: str | None = None
    #: Who took the lease (a ``start_apply``): the chain a link belongs to is the
    #: link whose entry names the chain lease's owner. A fact in its own field,
    #: never parsed back out of ``reason``, which repeats it for people.
    lease_owner: str | None = attrs.field(default=None, validator=_check_text_opt)
    #: The main commit an ``integrate`` recorded (the audit and recovery read it).
    main_sha: str | None = None
    #: Why the integrator's apply was cut short, on the requeue (or interrupt)
    #: that settled it; ``None`` on every other move.
    interrupted: str | None = attrs.field(default=None, validator=_check_text_opt)


@attrs.frozen
class CheckAttempt:
    """An earlier run of a check that failed and was retried: what it said, where to read more."""

    exit_code: int | None
    output_tail: str = attrs.field(
        default="", converter=_tail, validator=attrs_validator(check_text)
    )
    url: str | None = attrs.field(default=None, validator=_check_text_opt)


def _attempts(value: Iterable[CheckAttempt]) -> tuple[CheckAttempt, ...]:
    return _many(value, "check attempts")


@attrs.frozen
class CheckResult:
    """One check run: its name, its exit code (``None`` if it never exited) and output tail.

    A check run by a CI names the build (``url``) and the step that failed
    (``step``); ``retried`` holds the failed runs before this one, so a check
    that failed and then passed is :attr:`flaky` with both results kept.
    """

    name: str = attrs.field(validator=attrs_validator(check_text))
    exit_code: int | None
    output_tail: str = attrs.field(
        default="", converter=_tail, validator=attrs_validator(check_text)
    )
    timed_out: bool = False
    url: str | None = attrs.field(default=None, validator=_check_text_opt)
    step: str | None = attrs.field(default=None, validator=_check_text_opt)
    retried: tuple[CheckAttempt, ...] = attrs.field(default=(), converter=_attempts)

    @name.validator
    def _name_one_line(self, _a: object, value: str) -> None:
        if not value or "\n" in value or len(value) > 100:
            raise InvalidInput("check name", value, "use one line of 1 to 100 characters")

    @property
    def failed(self) -> bool:
        return self.timed_out or self.exit_code != 0

    @property
    def flaky(self) -> bool:
        """Failed at first, passed on a retry."""
        return bool(self.retried) and not self.failed


@attrs.frozen
class Evidence:
    """What the apply saw. Which fields are required depends on the reason."""

    conflicted_paths: tuple[str, ...] = attrs.field(default=(), converter=_sorted_paths)
    checks: tuple[CheckResult, ...] = attrs.field(default=(), converter=_checks)
    diagnostic: str | None = attrs.field(
        default=None, converter=_optional_text, validator=_check_text_opt
    )
    main_attempts: tuple[str, ...] = attrs.field(default=(), converter=_shas)
    files: tuple[str, ...] = attrs.field(default=(), converter=_sorted_paths)
    lease_owner: str | None = attrs.field(default=None, validator=_check_text_opt)
    lease_since: datetime | None = None

    @conflicted_paths.validator
    def _paths(self, _a: object, value: tuple[str, ...]) -> None:
        for path in value:
            check_relpath(path, field="conflicted path")

    @files.validator
    def _files(self, _a: object, value: tuple[str, ...]) -> None:
        for path in value:
            check_relpath(path, field="evidence file")

    @main_attempts.validator
    def _attempts(self, _a: object, value: tuple[str, ...]) -> None:
        for sha in value:
            check_sha(sha, field="main attempt sha")


def _require(report: BlockedReport) -> str | None:
    """Say what the reason needs that the evidence lacks, or ``None``."""
    e = report.evidence
    match report.reason:
        case Reason.MERGE_CONFLICT if not e.conflicted_paths:
            return "merge_conflict needs at least one conflicted path"
        case Reason.CHECKS_FAILED if not any(c.failed for c in e.checks):
            return "checks_failed needs at least one failed check"
        case Reason.MAIN_MOVED if not e.main_attempts:
            return "main_moved needs the main shas it tried (main_attempts)"
        case Reason.PRECONDITION_FAILED | Reason.PUSH_REJECTED if e.diagnostic is None:
            return f"{report.reason} needs a diagnostic"
        case Reason.CHECKS_TIMED_OUT if not any(c.timed_out for c in e.checks):
            return "checks_timed_out needs at least one timed-out check (named by its builder)"
        case Reason.APPLY_INTERRUPTED if e.lease_owner is None or e.lease_since is None:
            return "apply_interrupted needs lease_owner and lease_since"
        case Reason.CONFIG_CHANGED if not e.files or e.diagnostic is None:
            return "config_changed needs the changed files and their diff (diagnostic)"
    return None


@attrs.frozen
class BlockedReport:
    """Why an apply was blocked, against which ``main``, with the evidence."""

    reason: Reason = attrs.field(converter=Reason)
    main_sha: str = attrs.field(validator=attrs_validator(check_sha, field="main sha"))
    evidence: Evidence = attrs.field(factory=Evidence)
    detail: str | None = attrs.field(
        default=None, converter=_optional_text, validator=_check_text_opt
    )

    def __attrs_post_init__(self) -> None:
        missing = _require(self)
        if missing is not None:
            raise InvalidInput("evidence", self.reason.value, missing)


class FollowUpState(enum.StrEnum):
    """Whether a blocked outcome's follow-up todo exists on disk yet."""

    PENDING = "pending"
    CREATED = "created"
    FAILED = "failed"


@attrs.frozen
class BlockedRecord:
    """The one stored row per blocked ``(slug, branch, sha)``.

    A record always names its follow-up slug; when the todo could not be
    written, ``follow_up_state`` is ``FAILED`` and ``follow_up_error`` says why.
    """

    id: int
    key: CandidateKey
    reason: Reason
    main_sha: str
    follow_up_slug: str = attrs.field(
        validator=attrs_validator(check_slug, limit=FOLLOW_UP_SLUG_MAX)
    )
    previous_follow_up: str | None
    status: str
    follow_up_state: FollowUpState
    follow_up_error: str | None
    blocked_at: datetime
    last_blocked_at: datetime
    occurrences: int
    #: When a resume found the follow-up resolved (its resolver said so); ``None``
    #: while it is open, after a forced resume, and again after a new block.
    resolved_at: datetime | None = None


@attrs.frozen
class Occurrence:
    """One blocked report as it arrived: the evidence history of a blocked outcome."""

    blocked_id: int
    number: int
    seq: int
    report: BlockedReport
    at: datetime


@attrs.frozen
class FollowUpJob:
    """An outbox row: materialize ``follow_up_slug`` after the blocking commit."""

    id: int
    follow_up_slug: str
    blocked_id: int
    attempts: int
    done: bool


@attrs.frozen
class Lease:
    """The integration lease on one ``main``: who holds it, for which candidate, until when."""

    name: str
    owner: str
    candidate_id: int | None
    acquired_at: datetime
    expires_at: datetime


@attrs.frozen
class Guidance:
    """Resume guidance: an uppercase code line, facts, and ``NEXT:`` commands.

    ``actions`` are the next steps as data (:mod:`.actions`); ``next_commands``
    is their rendering through the command templates, one command per action,
    in the same order. Follow the actions; print the commands.
    """

    code: str
    facts: tuple[str, ...]
    next_commands: tuple[str, ...]
    #: Which of ``next_commands`` (and ``actions``) is the resume step.
    resume_at: int = -1
    actions: tuple[Action, ...] = attrs.field(default=())

    @actions.validator
    def _one_command_each(self, _a: object, value: tuple[Action, ...]) -> None:
        if value and len(value) != len(self.next_commands):
            raise InvalidInput(
                "guidance actions", len(value), "give one action per next command, in order"
            )

    @property
    def resume_command(self) -> str | None:
        if not -len(self.next_commands) <= self.resume_at < len(self.next_commands):
            return None
        return self.next_commands[self.resume_at]

    @property
    def resume_action(self) -> Action | None:
        """The action at ``resume_at`` (a :class:`~.actions.Resume`), or ``None``."""
        if not -len(self.actions) <= self.resume_at < len(self.actions):
            return None
        return self.actions[self.resume_at]

    @property
    def text(self) -> str:
        lines = [self.code, *self.facts, *(f"NEXT: {c}" for c in self.next_commands)]
        return "\n".join(lines) + "\n"


def _one_line(value: object) -> str:
    # A hook's message may span lines; a report line must not.
    return " ".join(str(value).split())


@attrs.frozen
class HookFailure:
    """A hook that raised after a commit: the move stands; this says which hook and why."""

    hook: str
    error: str
    message: str = attrs.field(converter=_one_line)

    def __str__(self) -> str:
        return f"hook {self.hook} failed: {self.error}: {self.message}"


@attrs.frozen
class Outcome:
    """What an Engine call returns.

    ``transition`` is ``None`` when the call was a no-op (a repeated submit).
    ``blocked`` is set whenever the candidate is in a state that carries a
    blocked outcome. ``hook_errors`` lists the hooks that raised after the
    commit; the move itself was written all the same.
    """

    candidate: Candidate
    transition: Transition | None
    blocked: BlockedRecord | None = None
    guidance: Guidance | None = None
    hook_errors: tuple[HookFailure, ...] = ()

    @property
    def state(self) -> State:
        return self.candidate.state
