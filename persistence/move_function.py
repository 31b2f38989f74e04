"""PostgreSQL's server-side move, ``mergegate_move``, in each version a migration wrote.

The function is the Engine's fast path as one call (migration 4); migration 13
gave it the facts' columns and migration 14 the queue controls' checks. Each
version is frozen text, as every migration is, and each later one is written
as edits of the one before, so the history shows what changed. The migrations
that create them are listed in :mod:`.migrations`.
"""

from __future__ import annotations

__all__ = ["MOVE_FUNCTION", "MOVE_FUNCTION_V13", "MOVE_FUNCTION_V14", "OLD_MOVE_SIGNATURE"]

# PostgreSQL: the Engine's fast path (mergegate.statemachine.move) as ONE call,
# so a plain move costs one round trip instead of one per read plus the commit.
# The function knows nothing of the lifecycle: the client passes the event's
# steps (source state -> destination, flags, effects) from the table, so a new
# state or rule needs no new SQL. Every check comes before the first write and
# a failed check returns no row, so a decline commits nothing; the client then
# fires the request through the general path, which decides what went wrong.
# The advisory locks are the ones the general path takes (keys computed by the
# client), so the two paths serialize against each other.
MOVE_FUNCTION = """CREATE OR REPLACE FUNCTION mergegate_move(
        p_slug text, p_slug_lock bigint, p_branch text, p_sha text, p_event text,
        p_sources text[], p_dests text[], p_active boolean[], p_queued boolean[],
        p_take boolean[], p_release boolean[], p_close boolean[],
        p_expected integer, p_at timestamptz, p_actor text, p_note text,
        p_lease text, p_lease_lock bigint, p_owner text, p_expires timestamptz)
    RETURNS TABLE (id bigint, branch text, sha text, source text, seq integer,
                   submitted_at timestamptz)
    LANGUAGE plpgsql AS $fn$
    DECLARE
        c_id bigint; c_branch text; c_sha text; c_state text; c_seq integer;
        c_submitted timestamptz; c_updated timestamptz; i integer;
    BEGIN
        PERFORM pg_advisory_xact_lock(p_slug_lock);
        IF p_sha IS NOT NULL THEN
            PERFORM 1 FROM candidates c WHERE c.slug = p_slug LIMIT 1;
            IF FOUND THEN RETURN; END IF;
            i := array_position(p_sources, NULL);
            IF i IS NULL THEN RETURN; END IF;
            c_branch := p_branch; c_sha := p_sha; c_seq := 0; c_submitted := p_at;
        ELSE
            SELECT c.id, c.branch, c.sha, c.state, c.seq, c.submitted_at, c.updated_at
              INTO c_id, c_branch, c_sha, c_state, c_seq, c_submitted, c_updated
              FROM candidates c WHERE c.slug = p_slug ORDER BY c.active DESC, c.id DESC LIMIT 1;
            IF NOT FOUND OR c_seq <> coalesce(p_expected, c_seq) THEN RETURN; END IF;
            -- Moved after the caller read its clock (while this call waited for
            -- the lock): the general path stamps the move anew.
            IF c_updated > p_at THEN RETURN; END IF;
            i := array_position(p_sources, c_state);
            IF i IS NULL THEN RETURN; END IF;
            IF p_take[i] THEN
                PERFORM pg_advisory_xact_lock(p_lease_lock);
                PERFORM 1 FROM leases l WHERE l.name = p_lease;
                IF FOUND THEN RETURN; END IF;
            END IF;
        END IF;
        -- Every check passed: the writes.
        IF p_sha IS NOT NULL THEN
            INSERT INTO candidates AS c (slug, branch, sha, state, seq, submitted_at, updated_at,
                                         active, queued)
                VALUES (p_slug, p_branch, p_sha, p_dests[i], 1, p_at, p_at, p_active[i],
                        p_queued[i])
                RETURNING c.id INTO c_id;
        ELSE
            UPDATE candidates c SET state = p_dests[i], seq = c_seq + 1, updated_at = p_at,
                active = p_active[i], queued = p_queued[i]
                WHERE c.id = c_id;
        END IF;
        IF p_take[i] THEN
            INSERT INTO leases (name, owner, candidate_id, acquired_at, expires_at)
                VALUES (p_lease, p_owner, c_id, p_at, p_expires);
        END IF;
        INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at, reason)
            VALUES (c_id, c_seq + 1, p_event, c_state, p_dests[i], c_sha, p_actor, p_at, p_note);
        IF p_release[i] THEN
            DELETE FROM leases l WHERE l.name = p_lease AND l.candidate_id = c_id;
        END IF;
        IF p_close[i] THEN
            UPDATE integration_blocked_outcomes o SET status = 'resumed', resumed_at = p_at
                WHERE o.slug = p_slug AND o.branch = c_branch AND o.sha = c_sha;
        END IF;
        -- The row by assignment and RETURN NEXT, not RETURN QUERY: one query less
        -- to run (5-12% of the function's server time, measured).
        id := c_id; branch := c_branch; sha := c_sha; source := c_state; seq := c_seq;
        submitted_at := c_submitted;
        RETURN NEXT;
    END
    $fn$"""


# Migration 13 takes the main sha and the interruption and writes the three
# facts to their columns (see FACT_COLUMNS in :mod:`.migration_history`); the
# old function is dropped: a new signature would otherwise sit beside it as an
# overload.
OLD_MOVE_SIGNATURE = (
    "mergegate_move(text, bigint, text, text, text, text[], text[], boolean[], boolean[], "
    "boolean[], boolean[], boolean[], integer, timestamptz, text, text, text, bigint, text, "
    "timestamptz)"
)


def _edited(text: str, *edits: tuple[str, str]) -> str:
    """``text`` with each ``(old, new)`` made once: a later version of a frozen statement."""
    for old, new in edits:
        if text.count(old) != 1:
            raise AssertionError(f"migration text changed under an edit: {old[:40]!r}")
        text = text.replace(old, new)
    return text


# Migration 4's function, with the main sha and the interruption as parameters
# and the three facts written to their columns; both texts are frozen.
MOVE_FUNCTION_V13 = _edited(
    MOVE_FUNCTION,
    (
        "p_owner text, p_expires timestamptz)",
        "p_owner text, p_expires timestamptz,\n        p_main text, p_interrupted text)",
    ),
    (
        "sha, actor, at, reason)\n",
        "sha, actor, at, reason,\n"
        "                                 lease_owner, main_sha, interrupted)\n",
    ),
    (
        "p_actor, p_at, p_note);",
        "p_actor, p_at, p_note,\n"
        "                    CASE WHEN p_take[i] THEN p_owner END, p_main, p_interrupted);",
    ),
)

# Migration 14 declines (so the general path raises) a lease-taking step while
# the queue is paused and a new candidate while it is draining; the literals
# are frozen with this migration.
_PAUSED = (
    "(SELECT q.action FROM queue_controls q WHERE q.action IN ('pause', 'unpause') "
    "ORDER BY q.id DESC LIMIT 1) = 'pause'"
)
_DRAINING = (
    "(SELECT q.action FROM queue_controls q WHERE q.action IN ('drain', 'undrain') "
    "ORDER BY q.id DESC LIMIT 1) = 'drain'"
)
MOVE_FUNCTION_V14 = _edited(
    MOVE_FUNCTION_V13,
    (
        "PERFORM 1 FROM candidates c WHERE c.slug = p_slug LIMIT 1;\n"
        "            IF FOUND THEN RETURN; END IF;",
        "PERFORM 1 FROM candidates c WHERE c.slug = p_slug LIMIT 1;\n"
        "            IF FOUND THEN RETURN; END IF;\n"
        f"            IF {_DRAINING} THEN RETURN; END IF;",
    ),
    (
        "PERFORM pg_advisory_xact_lock(p_lease_lock);",
        f"IF {_PAUSED} THEN RETURN; END IF;\n"
        "                PERFORM pg_advisory_xact_lock(p_lease_lock);",
    ),
)
