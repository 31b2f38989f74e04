"""``show SLUG`` on the read fast path: a candidate with nothing but its last move to say.

The JSON and text are those of ``commands_query`` and ``human.show_text`` for a
candidate with no block, past or present, no check builds, no control and no
lease; any of those raises :class:`StepAside`, for click's path to render.
"""

from __future__ import annotations

from typing import Any

from ._fastgate import StepAside
from ._faststore import (
    CANDIDATE,
    CARRYING_BLOCKED,
    IN_FORCE,
    LEASED,
    SHA_SHOWN,
    TRANSITION,
    Candidate,
    Reader,
    Transition,
    short_time,
)

__all__ = ["show"]


def show(db: Reader, slug: str) -> tuple[dict[str, Any], str]:
    """``show SLUG`` of a candidate with no block, past or present, and no check builds."""
    from mergegate.followups.text import one_line  # noqa: PLC0415

    from .payload import candidate_json, transition_json  # noqa: PLC0415

    found = db.one(
        f"SELECT {CANDIDATE} FROM candidates WHERE slug = ? ORDER BY active DESC, id DESC LIMIT 1",
        (slug,),
    )
    if found is None:
        raise StepAside  # not found: the general path says so
    c = Candidate(found)
    if c.state in CARRYING_BLOCKED:
        raise StepAside  # guidance and evidence to render
    if c.state in LEASED:
        raise StepAside  # the lease's holder to judge (human.lease_line)
    if db.one("SELECT 1 FROM integration_blocked_outcomes WHERE slug = ? LIMIT 1", (slug,)):
        raise StepAside  # earlier follow-ups to list
    if db.one("SELECT 1 FROM check_builds WHERE slug = ? LIMIT 1", (slug,)):
        raise StepAside  # flaky checks to look for
    if db.rows(IN_FORCE) or db.one("SELECT 1 FROM queue_controls WHERE slug = ?", (slug,)):
        raise StepAside  # a pause, a drain or a promote to say (cli/controlview.py)
    last = db.one(
        f"SELECT {TRANSITION} FROM transitions WHERE candidate_id = ? ORDER BY seq DESC LIMIT 1",
        (c.id,),
    )
    t = None if last is None else Transition(last)
    result: dict[str, Any] = {
        "candidate": candidate_json(c),  # type: ignore[arg-type]
        "transition": None if t is None else transition_json(t),  # type: ignore[arg-type]
        "blocked": None,
        "guidance": None,
        "latest_evidence": None,
        "occurrences": [],
        "blocked_history": [],
        "flaky": [],
        "controls": {"paused": None, "draining": None},
        "promoted": None,
    }
    # human.show_text of a candidate without a block.
    lines = [
        f"slug:       {c.key.slug}",
        f"branch:     {one_line(c.key.branch)}",
        f"sha:        {c.key.sha[:SHA_SHOWN]}",
        f"state:      {c.state}",
        f"seq:        {c.seq}",
        f"submitted:  {short_time(c.submitted_at)} UTC",
    ]
    if t is not None:
        note = f" ({one_line(t.reason)})" if t.reason is not None else ""
        lines.append(
            f"last move:  {t.event} at {short_time(t.at)} UTC by {one_line(t.actor)}{note}"
        )
    return result, "\n".join(lines) + "\n"
