"""Carrying out a queue control: checked against what is in force, then logged, in one transaction.

Every check comes before the first write, inside one store transaction, so a
refused control writes nothing. See :mod:`.controls` for what each control means.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from ._validation import check_slug, check_text
from .controls import WHY_REQUIRED, Control, ControlEntry
from .errors import CandidateNotFound, ControlRefused, InvalidInput
from .store import Store
from .table import Table

__all__ = ["apply_control"]


class _Controlling(Protocol):
    """What :func:`apply_control` needs of an Engine (an Engine is one)."""

    store: Store
    actor: str
    clock: Callable[[], datetime]

    @property
    def table(self) -> Table: ...


def _check_why(action: Control, why: str | None) -> None:
    if why is None:
        if action in WHY_REQUIRED:
            raise InvalidInput("why", why, f"say why you {action} (it is logged)")
        return
    check_text(why, field="why")
    if not why.strip():
        raise InvalidInput("why", why, f"say why you {action} in words (it is logged)")


def _since(entry: ControlEntry) -> str:
    return f"by {entry.actor} since {entry.at.isoformat()}: {entry.why}"


def apply_control(
    engine: _Controlling,
    action: Control,
    *,
    why: str | None,
    actor: str | None = None,
    slug: str | None = None,
    requeue: bool = False,
) -> ControlEntry:
    """Check ``action`` against what is in force, carry it out and log it; return its entry.

    Raises InvalidInput (no or a blank ``why`` where one is required, a bad
    slug), CandidateNotFound (promote of an unknown slug) or ControlRefused
    (unpause of a queue that is not paused, a second pause, a promote of a
    candidate that is not queued), having written nothing.
    """
    _check_why(action, why)
    who = engine.actor if actor is None else actor
    check_text(who, field="actor")
    if (slug is not None) != (action is Control.PROMOTE):
        raise InvalidInput("slug", slug, "only a promote names a candidate, and it must")
    if requeue and action is not Control.PAUSE:
        raise InvalidInput("requeue", requeue, "only a pause gives the work in flight back")
    if slug is not None:
        check_slug(slug)
    with engine.store.transaction() as tx:
        now = tx.queue_controls()
        if action is Control.PAUSE and now.paused is not None:
            raise ControlRefused(
                "pause", f"the queue is already paused {_since(now.paused)}", "unpause it first"
            )
        if action is Control.UNPAUSE and now.paused is None:
            raise ControlRefused("unpause", "the queue is not paused", "there is nothing to do")
        if action is Control.DRAIN and now.draining is not None:
            raise ControlRefused(
                "drain", f"the queue is already draining {_since(now.draining)}", "undrain first"
            )
        if action is Control.UNDRAIN and now.draining is None:
            raise ControlRefused("undrain", "the queue is not draining", "there is nothing to do")
        if slug is not None:
            candidate = tx.candidate(slug)
            if candidate is None:
                raise CandidateNotFound(slug)
            if candidate.state not in engine.table.active:
                # It exists and is finished (integrated): say so, not "no candidate".
                raise ControlRefused(
                    f"promote {slug}",
                    f"{slug} is {candidate.state}, no longer in the queue",
                    "only a queued (pending or retry) candidate can be promoted",
                )
            if candidate.state not in engine.table.queued:
                raise ControlRefused(
                    f"promote {slug}",
                    f"it is {candidate.state}, not waiting in the queue",
                    "only a pending or retry candidate can go first (resume a blocked one)",
                )
            tx.promote(candidate.id)
        return tx.log_control(
            action, actor=who, at=engine.clock(), why=why, slug=slug, requeue=requeue
        )
