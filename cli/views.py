"""The status page's views as JSON-ready data: one function per view, each the body of its
``/api/`` twin, and the HTML page is rendered from the very same data (cli/webpage.py).

Nothing here writes: every view reads the store (and a blocked candidate's
todo folder) through the bounded reads of ``list`` and ``report``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from mergegate.statemachine import TABLE, Candidate, Engine, Store

from .controlview import controls_json
from .human import evidence_lines
from .payload import blocked_json, guidance_json, occurrence_json, stamp
from .report import digest, digest_json
from .status import Status, integrator_json, read_status, row_json

__all__ = ["FILE_CAP", "RECENT", "blocked_view", "queue_view", "stats_view", "status_view"]

#: The window of the page's throughput and time in queue: the last day.
RECENT = timedelta(hours=24)
#: How much of one todo file the page shows (its end, where the failure is, is in input.md).
FILE_CAP = 20_000
#: How many recent integrations the page lists.
_RECENT_ROWS = 20


def queue_view(status: Status) -> dict[str, Any]:
    """``/api/queue``: the active queue in order, as ``list --json`` has it."""
    return {
        "now": stamp(status.now),
        "typical_apply_seconds": None
        if status.typical is None
        else int(status.typical.total_seconds()),
        "typical_apply_samples": status.samples,
        "integrator": integrator_json(status.integrator),
        "candidates": [row_json(r, status.now) for r in status.rows],
        "controls": controls_json(status.controls),
        "queued": status.queued,
    }


def _todo_files(todos: Path | None, follow_up_slug: str) -> list[dict[str, Any]]:
    """The follow-up's files as they are on the integration host, each cut to FILE_CAP."""
    if todos is None:
        return []
    from mergegate.followups import TODO_FILES  # noqa: PLC0415
    from mergegate.followups.fsio import read_regular  # noqa: PLC0415
    from mergegate.followups.paths import todo_path  # noqa: PLC0415

    try:
        folder = todo_path(todos, follow_up_slug)
    except Exception:  # a hostile name or a folder moved elsewhere: show nothing from it
        return []
    files = []
    for name in TODO_FILES:
        try:
            data = read_regular(folder / name)
        except Exception as err:  # a symlink or a FIFO planted under the name: not followed
            files.append({"name": name, "text": f"(not shown: {err})", "cut": False})
            continue
        if data is None:
            continue
        text = data.decode("utf-8", errors="replace")
        cut = len(text) > FILE_CAP
        files.append({"name": name, "text": text[:FILE_CAP], "cut": cut})
    return files


def _blocked_one(
    engine: Engine, store: Store, c: Candidate, todos: Path | None
) -> dict[str, Any] | None:
    outcome = engine.show(c.key.slug)
    record = outcome.blocked
    if record is None:
        return None
    occurrences = store.occurrences(record.id)
    latest = occurrences[-1] if occurrences else None
    return {
        "slug": c.key.slug,
        "state": c.state.value,
        "since": stamp(c.updated_at),
        "blocked": blocked_json(record),
        "failure": [] if latest is None else [ln.strip() for ln in evidence_lines(latest)],
        "latest_evidence": None if latest is None else occurrence_json(latest),
        "guidance": None if outcome.guidance is None else guidance_json(outcome.guidance),
        "follow_up_files": _todo_files(todos, record.follow_up_slug),
    }


def blocked_view(
    engine: Engine, store: Store, status: Status, todos: Path | None
) -> dict[str, Any]:
    """``/api/blocked``: each held candidate with its reason, named failure, follow-up, NEXT."""
    held = [
        r.candidate
        for r in status.rows
        if r.candidate.state in TABLE.carrying_blocked and r.position is None
    ]
    views = [_blocked_one(engine, store, c, todos) for c in held]
    return {"now": stamp(status.now), "blocked": [v for v in views if v is not None]}


def stats_view(store: Store, now: datetime) -> dict[str, Any]:
    """``/api/stats``: the last day's digest (``report --since 24h``), recent integrations first."""
    result = digest_json(digest(store, now - RECENT, now))
    result["integrated"] = list(reversed(result["integrated"]))[:_RECENT_ROWS]
    return result


def status_view(engine: Engine, store: Store, now: datetime, todos: Path | None) -> dict[str, Any]:
    """``/api/status``: every view of the page in one document (what the page polls)."""
    status = read_status(store, now)
    return {
        "queue": queue_view(status),
        "blocked": blocked_view(engine, store, status, todos),
        "stats": stats_view(store, now),
    }
