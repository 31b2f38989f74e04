"""Guidance as data: the typed next actions that bring a blocked candidate to ``integrated``.

A :class:`~.records.Guidance` carries its ``actions``; the ``NEXT:`` lines the
CLI prints and an embedder's own command templates are two renderings of the
same tuple (``mergegate.followups.GuidanceTemplates.render``). An orchestrator
follows them with a ``match`` on the action type, never by parsing text::

    for action in outcome.guidance.actions:
        match action:
            case Remediate(slug):
                engine.start_remediation(slug)
            case Resume(slug, branch):
                engine.resume(slug, new_sha=branch_tip(repo, branch))
            ...

Each action carries exactly the arguments its call needs. :class:`Resume`
names the branch whose tip to resume at, not a sha: guidance is rendered when
the candidate is blocked, before the fix exists, so the sha to resume at is
the branch's tip at the time the action is followed (the blocked sha is
``blocked_sha``, for the record).
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from ._validation import FOLLOW_UP_SLUG_MAX, attrs_validator, check_branch, check_sha, check_slug

__all__ = ["Action", "Apply", "Approve", "MarkDone", "Remediate", "Resume", "Show", "Sync"]

_slug = attrs_validator(check_slug)
_follow_up = attrs_validator(check_slug, field="follow-up slug", limit=FOLLOW_UP_SLUG_MAX)


@attrs.frozen
class Sync:
    """Create the follow-ups still queued (``mergegate followups sync``; ``drain`` in Python)."""

    name: ClassVar[str] = "sync"


@attrs.frozen
class Remediate:
    """Move the blocked candidate ``slug`` to ``remediating`` (``Engine.start_remediation``)."""

    name: ClassVar[str] = "remediate"
    slug: str = attrs.field(validator=_slug)


@attrs.frozen
class MarkDone:
    """Mark the follow-up ``follow_up`` of ``slug`` resolved under the configured rule
    (``mergegate followups done``; ``mark_done`` in Python)."""

    name: ClassVar[str] = "done"
    slug: str = attrs.field(validator=_slug)
    follow_up: str = attrs.field(validator=_follow_up)


@attrs.frozen
class Resume:
    """Resume ``slug`` at the tip of ``branch`` once the fix is committed there
    (``Engine.resume(slug, new_sha=<tip>)``); ``blocked_sha`` is the sha that was blocked."""

    name: ClassVar[str] = "resume"
    slug: str = attrs.field(validator=_slug)
    branch: str = attrs.field(validator=attrs_validator(check_branch))
    blocked_sha: str = attrs.field(validator=attrs_validator(check_sha))


@attrs.frozen
class Approve:
    """Approve ``slug``'s change to the configuration at exactly ``sha``, with a reason
    (``Engine.approve``; ``mergegate approve``). Only an operator should follow it."""

    name: ClassVar[str] = "approve"
    slug: str = attrs.field(validator=_slug)
    sha: str = attrs.field(validator=attrs_validator(check_sha))


@attrs.frozen
class Apply:
    """Apply ``slug`` (``Engine.apply``; ``mergegate apply``, or let ``mergegate run`` take it)."""

    name: ClassVar[str] = "apply"
    slug: str = attrs.field(validator=_slug)


@attrs.frozen
class Show:
    """Read ``slug``'s stored evidence (``Engine.show``; ``mergegate show``)."""

    name: ClassVar[str] = "show"
    slug: str = attrs.field(validator=_slug)


#: One next action; ``action.name`` is its template's name in ``GuidanceTemplates``.
Action = Sync | Remediate | MarkDone | Approve | Resume | Apply | Show
