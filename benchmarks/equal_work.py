"""Equal-work baselines: the statements mergegate issues for a move, written by hand.

The statement lists below were captured, not guessed: with ``sqlite3``'s
``set_trace_callback`` on the SQLite store's connection, and with
``log_statement = 'all'`` in the PostgreSQL store's session (the server log).
Each run captures them again (:func:`sqlite_shapes`, :func:`postgres_shapes`)
and compares their *shapes* (the SQL text with every literal and placeholder
replaced by ``?``) with the hand-written lists, so a figure whose baseline has
drifted from what the store really does says so in its row instead of
comparing against the wrong amount of work.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

__all__ = [
    "PG_CYCLE",
    "PG_FAST_MOVE",
    "SQLITE_CYCLE",
    "drift",
    "postgres_round_trips",
    "postgres_shapes",
    "shape",
    "sqlite_shapes",
]

# One candidate through submit, start_apply, integrate (three moves, three
# transactions), as the SQLite store issues them since schema version 14 and
# the one interpreter (captured with the trace callback on 2026-12-07): a new
# candidate is inserted as its submit leaves it, with its first entry; an
# update sets only the columns the move changes; the facts have their columns.
_SELECT = (
    "SELECT id, slug, branch, sha, state, seq, submitted_at, updated_at FROM candidates "
    "WHERE slug = ? ORDER BY active DESC, id DESC LIMIT 1"
)
# The controls in force (a paused queue starts nothing, a draining one admits no
# submit: migration 14), read by a submit and a start since queue controls.
_CONTROLS = (
    "SELECT id, action, actor, at, why, slug, requeue FROM queue_controls WHERE id IN "
    "((SELECT id FROM queue_controls WHERE action IN ('pause', 'unpause') ORDER BY id DESC "
    "LIMIT 1), (SELECT id FROM queue_controls WHERE action IN ('drain', 'undrain') ORDER BY "
    "id DESC LIMIT 1))"
)
_COLUMNS = (
    "candidate_id, seq, event, source, dest, sha, actor, at, reason, idempotency_key, "
    "request_digest, lease_owner, main_sha, interrupted"
)
_SQLITE_APPEND = (
    f"INSERT INTO transitions ({_COLUMNS}) VALUES ((SELECT id FROM candidates WHERE id = ? AND "
    "seq = ?), ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, NULL)"
)
SQLITE_CYCLE: tuple[tuple[str, ...], ...] = (
    (
        "BEGIN IMMEDIATE",
        _SELECT,
        _CONTROLS,
        "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at, "
        "active, queued, queue_pos) VALUES (?, ?, ?, 'pending', 1, ?, ?, 1, 1, "
        "(SELECT COALESCE(MAX(queue_pos), 0) + 1 FROM candidates))",
        f"INSERT INTO transitions ({_COLUMNS}) VALUES "
        "(?, 1, 'submit', NULL, 'pending', ?, ?, ?, NULL, NULL, NULL, NULL, NULL, NULL)",
        "COMMIT",
    ),
    (
        "BEGIN IMMEDIATE",
        _SELECT,
        _CONTROLS,
        "SELECT name, owner, candidate_id, acquired_at, expires_at FROM leases WHERE name = ?",
        "INSERT INTO leases (name, owner, candidate_id, acquired_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
        "candidate_id = excluded.candidate_id, acquired_at = excluded.acquired_at, "
        "expires_at = excluded.expires_at",
        _SQLITE_APPEND,
        "UPDATE candidates SET state = 'applying', seq = 2, updated_at = ?, queued = 0 "
        "WHERE id = ?",
        "COMMIT",
    ),
    (
        "BEGIN IMMEDIATE",
        _SELECT,
        _SQLITE_APPEND,
        "UPDATE candidates SET state = 'integrated', seq = 3, updated_at = ?, active = 0 "
        "WHERE id = ?",
        "DELETE FROM leases WHERE name = ? AND candidate_id = ?",
        "COMMIT",
    ),
)

_FIND = (
    "SELECT c.id, c.slug, c.branch, c.sha, c.state, c.seq, c.submitted_at, c.updated_at, "
    "b.id AS b_id, b.slug AS b_slug, b.branch AS b_branch, b.sha AS b_sha, b.reason AS "
    "b_reason, b.main_sha AS b_main_sha, b.follow_up_slug AS b_follow_up_slug, "
    "b.previous_follow_up AS b_previous_follow_up, b.status AS b_status, b.follow_up_state AS "
    "b_follow_up_state, b.follow_up_error AS b_follow_up_error, b.blocked_at AS b_blocked_at, "
    "b.last_blocked_at AS b_last_blocked_at, b.occurrences AS b_occurrences, "
    "b.resolved_at AS b_resolved_at, (SELECT "
    "follow_up_slug FROM integration_blocked_outcomes WHERE slug = c.slug ORDER BY id DESC "
    "LIMIT 1) AS latest_follow_up FROM (SELECT id, slug, branch, sha, state, seq, "
    "submitted_at, updated_at FROM candidates WHERE slug = %s ORDER BY active DESC, id DESC "
    "LIMIT 1) c LEFT JOIN integration_blocked_outcomes b ON b.slug = c.slug AND b.branch = "
    "c.branch AND b.sha = c.sha"
)


def _move(sets: str) -> str:
    """The move: the candidate update (only what changed) and the entry, one statement."""
    return (
        f"WITH moved AS (UPDATE candidates SET state = %s, seq = %s, updated_at = %s{sets} "
        "WHERE id = %s AND seq = %s RETURNING id) INSERT INTO transitions (candidate_id, seq, "
        "event, source, dest, sha, actor, at, reason, idempotency_key, request_digest, "
        "lease_owner, main_sha, interrupted) VALUES "
        "((SELECT id FROM moved), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    )


_MOVE = _move("")
_MOVE_QUEUED = _move(", queued = %s")
_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_DROP_LEASE = "DELETE FROM leases WHERE name = %s AND candidate_id = %s"
_OWNER = "SELECT slug, branch, sha FROM integration_blocked_outcomes WHERE follow_up_slug = %s"
_BLOCK = (
    "INSERT INTO integration_blocked_outcomes AS o (slug, branch, sha, reason, main_sha, "
    "follow_up_slug, previous_follow_up, status, follow_up_state, blocked_at, last_blocked_at, "
    "occurrences) VALUES (%s, %s, %s, %s, %s, %s, %s, 'open', 'pending', %s, %s, 1) ON "
    "CONFLICT (slug, branch, sha) DO UPDATE SET reason = excluded.reason, main_sha = "
    "excluded.main_sha, last_blocked_at = excluded.last_blocked_at, occurrences = "
    "o.occurrences + 1, status = 'open', resumed_at = NULL, resolved_at = NULL RETURNING id, "
    "slug, branch, sha, reason, main_sha, follow_up_slug, previous_follow_up, status, "
    "follow_up_state, follow_up_error, blocked_at, last_blocked_at, occurrences, resolved_at"
)
_EVIDENCE = (
    "INSERT INTO blocked_evidence (blocked_id, number, seq, at, report) VALUES (%s, %s, %s, %s, %s)"
)
_OUTBOX = (
    "INSERT INTO follow_up_outbox (follow_up_slug, blocked_id, created_at) VALUES (%s, %s, %s) "
    "ON CONFLICT (follow_up_slug) DO UPDATE SET done_at = NULL"
)
_CLOSE = (
    "UPDATE integration_blocked_outcomes SET status = 'resumed', resumed_at = %s "
    "WHERE slug = %s AND branch = %s AND sha = %s"
)
# A resume re-enters the queue at its back, unless the block was an interrupted apply.
_REENTER = (
    "UPDATE candidates SET queue_pos = nextval('candidates_queue_pos_seq') WHERE id = %s AND "
    "NOT EXISTS (SELECT 1 FROM integration_blocked_outcomes o WHERE o.slug = candidates.slug "
    "AND o.branch = candidates.branch AND o.sha = candidates.sha "
    "AND o.reason = 'apply_interrupted')"
)

# The Engine's fast path (migration 4): a plain move is one call of the
# server-side function, in autocommit: one statement, one transaction, one round
# trip. The steps travel as array literals, cast on the server.
PG_FAST_MOVE = (
    "SELECT id, branch, sha, source, seq, submitted_at FROM mergegate_move(%s, %s, %s, %s, "
    "%s, %s::text[], %s::text[], %s::boolean[], %s::boolean[], %s::boolean[], %s::boolean[], "
    "%s::boolean[], %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)

# One candidate through figure 8's seven moves, as the PostgreSQL store issues
# them since schema version 13, captured from the server's statement log on
# 2026-12-07: submit, both starts and integrate take the fast path; block (it
# records the outcome), start_remediation (it enters a state that carries the
# outcome) and resume (it re-enters the queue at its back: a flag the server
# function declines) take the general path, a pipelined BEGIN .. COMMIT.
PG_CYCLE: tuple[tuple[str, ...], ...] = (
    (PG_FAST_MOVE,),
    (PG_FAST_MOVE,),
    (
        "BEGIN",
        _LOCK,
        _FIND,
        _MOVE,
        # The follow-up slug's owner (the transaction remembers it for the second ask).
        _OWNER,
        _BLOCK,
        _EVIDENCE,
        _OUTBOX,
        _DROP_LEASE,
        "COMMIT",
    ),
    ("BEGIN", _LOCK, _FIND, _MOVE, "COMMIT"),
    ("BEGIN", _LOCK, _FIND, _MOVE_QUEUED, _REENTER, _CLOSE, "COMMIT"),
    (PG_FAST_MOVE,),
    (PG_FAST_MOVE,),
)

_LITERAL = re.compile(r"'(?:[^']|'')*'|\$\d+|%s|\?|\b\d+\b|\bNULL\b")


def shape(statement: str) -> str:
    """The statement with every literal, number and placeholder replaced by ``?``."""
    return " ".join(_LITERAL.sub("?", statement).split())


def drift(captured: Iterable[str], written: Iterable[Iterable[str]]) -> str:
    """``""`` if the captured statements have the hand-written shapes, else what differs."""
    got = [shape(s) for s in captured]
    want = [shape(s) for tx in written for s in tx]
    if got == want:
        return ""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"statement {i + 1} differs: captured {g[:60]!r}, written {w[:60]!r}"
    return f"{len(got)} statements captured, {len(want)} written"


def sqlite_shapes(conn: Any, cycle: Callable[[], object]) -> list[str]:
    """The statements ``cycle()`` issues on the sqlite3 connection ``conn``, in order."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        cycle()
    finally:
        conn.set_trace_callback(None)
    return seen


_LOGGED = re.compile(r"\[(\d+)\] .*?LOG:\s+(?:execute [^:]+|statement): (.*)")


def postgres_shapes(conn: Any, cycle: Callable[[], object], log: Path) -> list[str] | None:
    """The statements ``cycle()`` issues on the psycopg connection ``conn``, from the server log.

    ``None`` when the server's log file cannot be read here (another host, no
    permission): the caller then says the baseline was not re-checked.
    """
    try:
        start = log.stat().st_size
    except OSError:
        return None
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    conn.execute("SET log_statement = 'all'")
    try:
        cycle()
    finally:
        conn.execute("RESET log_statement")
    # The last statement logged is the RESET; wait until it is in the file.
    for _ in range(100):
        with log.open(errors="replace") as f:
            f.seek(start)
            text = f.read()
        if "RESET log_statement" in text:
            break
        time.sleep(0.02)
    found = []
    for line in text.splitlines():
        m = _LOGGED.search(line)
        if m and int(m.group(1)) == pid and "log_statement" not in m.group(2):
            found.append(m.group(2))
    return found


def postgres_round_trips(conn: Any, cycle: Callable[[], object]) -> int:
    """How many times ``cycle()`` waits for the server on the psycopg connection ``conn``.

    Counted in libpq's trace of the session: one round trip each time the
    client, having sent messages, turns to read the server's answer.
    """
    from psycopg import pq  # here: the SQLite figures run without psycopg installed

    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        # Lines then start with the direction, F (client) or B (server).
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            cycle()
        finally:
            conn.pgconn.untrace()  # flushes libpq's stream into the file
        trace.seek(0)
        sides = [line[:1] for line in trace if line[:1] in ("F", "B")]
    return sum(1 for pair in pairwise(sides) if pair == ("F", "B"))
