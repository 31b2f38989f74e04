"""An operator's approval of a candidate that changes the integrator's configuration.

The configuration (``mergegate.toml`` or ``[tool.mergegate]``) decides which
checks gate every candidate; a candidate that changes it would change the gate
for all those after it. So the applier holds such a candidate as
``config_changed`` before any of its checks run, until an operator approves
that exact sha. :func:`approve` checks and logs the approval and moves a
candidate held for it to ``remediating``, so that ``resume`` is the next step;
:func:`approval_missing` is what ``resume`` asks instead of the follow-up's
resolver: an approval, not a todo, settles a ``config_changed`` block, so its
refusal names ``mergegate approve`` and never a forced resume.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ._validation import check_sha, check_slug, check_text
from .errors import FollowUpNotResolved, InvalidInput
from .ledger import Approval
from .records import BlockedRecord, Candidate, Outcome, Reason
from .states import State
from .store import Store

__all__ = ["approval_missing", "approve"]


class _Approving(Protocol):
    """What :func:`approve` needs of an Engine (an Engine is one)."""

    store: Store
    actor: str

    def get(self, slug: str) -> Candidate: ...

    def start_remediation(
        self, slug: str, *, expected_seq: int | None = None, actor: str | None = None
    ) -> Outcome: ...


def _held(store: Store, candidate: Candidate) -> BlockedRecord | None:
    """The open ``config_changed`` block of ``candidate``, if that is why it is blocked."""
    if candidate.state is not State.BLOCKED:
        return None
    record = store.blocked_record(candidate.key)
    if record is None or record.reason is not Reason.CONFIG_CHANGED or record.status != "open":
        return None
    return record


def approve(
    engine: _Approving, slug: str, *, sha: str, why: str, at: datetime, actor: str | None = None
) -> Approval:
    """Log that ``slug`` at exactly ``sha`` may change the configuration; return the approval.

    Every check comes before the first write: raises InvalidInput for a sha
    that is not a full object id or not the candidate's current sha, an empty
    ``why``, or a candidate that is finished; CandidateNotFound for an unknown
    slug. A candidate held as ``config_changed`` is then moved to
    ``remediating``. Approving the same sha again returns the first approval.
    """
    check_slug(slug)
    check_sha(sha, field="approved sha")
    check_text(why, field="approval reason")
    if not why.strip():
        raise InvalidInput("approval reason", why, "say why the configuration change is right")
    who = engine.actor if actor is None else actor
    check_text(who, field="actor")
    candidate = engine.get(slug)
    if candidate.state in (State.INTEGRATED, State.WITHDRAWN):
        raise InvalidInput(
            "slug", slug, f"the candidate is {candidate.state.value}; there is nothing to approve"
        )
    if candidate.key.sha != sha:
        # An approval is for what the operator read: a superseded or resumed
        # candidate at another sha is another change, approved on its own.
        raise InvalidInput(
            "approved sha",
            sha,
            f"{slug} is at {candidate.key.sha}; read that change and approve that sha",
        )
    approval = engine.store.approve(slug, sha, why, actor=who, at=at)
    if _held(engine.store, candidate) is not None:
        engine.start_remediation(slug, expected_seq=candidate.seq, actor=who)
    return approval


def approval_missing(store: Store, record: BlockedRecord) -> FollowUpNotResolved | None:
    """``resume``'s refusal of ``record``'s ``config_changed`` block, or ``None`` once approved.

    The refusal names the approval as the only fix: a resume forced past it
    (``force_reason``) is held as ``config_changed`` again by the next apply.
    """
    key = record.key
    if store.approval(key.slug, key.sha) is not None:
        return None
    return FollowUpNotResolved(
        key,
        record.follow_up_slug,
        f"its configuration change at {key.sha} is not approved",
        fix=(
            f"an operator reads the change and approves it with: "
            f"mergegate approve {key.slug} --sha {key.sha} --why TEXT"
        ),
    )
