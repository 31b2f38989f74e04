"""A stranger compares `mergegate report` with `report --json` and the status page: the same
time in queue must read the same everywhere (seen: text p95 14s, JSON and page 15s)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from .conftest import Scratch


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_cli_stranger_report_text_rounds_time_in_queue_as_json_does(blocked: Scratch) -> None:
    """A wait of 9.7 s is p50/p95 10 in --json, so the human report says 10s, not 9s."""
    moves = blocked("--json", "history", "add-docs").doc["result"]["transitions"]
    integrated = _at(next(t["at"] for t in moves if t["event"] == "integrate"))
    submitted = integrated - timedelta(seconds=9.7)
    # The store keeps UTC times as ISO text with a Z; set the submission 9.7 s before the
    # integration so the rounding of the wait is decided, not left to the clock.
    with sqlite3.connect(blocked.db) as conn:
        conn.execute(
            "UPDATE candidates SET submitted_at = ? WHERE slug = 'add-docs'",
            (submitted.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),),
        )
    waits = blocked("--json", "report").doc["result"]["time_in_queue_seconds"]
    assert waits == {"p50": 10, "p95": 10, "count": 1}
    text = blocked("report").stdout
    line = next(ln for ln in text.splitlines() if ln.startswith("time in queue:"))
    assert line.startswith("time in queue: p50 10s, p95 10s"), text
