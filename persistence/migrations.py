"""Numbered schema migrations, written once for every SQL store.

Each statement is a template whose ``{id}``, ``{ref}``, ``{int}``, ``{text}``,
``{time}``, ``{json}`` and ``{bool}`` name a column type; a dialect's type map
fills them in (see :mod:`.dialect`). Table, column, index and constraint names
are the same on every backend, so one query serves all of them and the
PostgreSQL store can tell a conflict by its constraint name.

Each migration is applied once, in order, inside a transaction, and its version
is recorded in ``schema_migrations``. A store refuses to open a database whose
recorded version is newer than the code knows, rather than guess at its shape.
Applied migrations are history: change the schema by adding one, never by
editing one.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = [
    "MIGRATIONS",
    "POSTGRES_MIGRATIONS",
    "SQLITE_MIGRATIONS",
    "Migration",
    "Only",
    "POSTGRES_TYPES",
    "SQLITE_TYPES",
    "render",
]


@attrs.frozen
class Only:
    """A template statement that runs on one backend only (``backend``: a ``Store.backend``)."""

    backend: str
    sql: str


@attrs.frozen
class Migration:
    """One schema step: ``version`` is its number, ``statements`` run in order.

    In :data:`MIGRATIONS` a statement may be an :class:`Only`; the rendered
    lists hold plain SQL, the statements of their backend.
    """

    version: int
    name: str
    statements: tuple[str | Only, ...]


SQLITE_TYPES: Mapping[str, str] = {
    "id": "INTEGER PRIMARY KEY",
    "ref": "INTEGER",
    "int": "INTEGER",
    "text": "TEXT",
    "time": "TEXT",
    "json": "TEXT",
    "bool": "INTEGER",
}

POSTGRES_TYPES: Mapping[str, str] = {
    "id": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "ref": "bigint",
    "int": "integer",
    "text": "text",
    "time": "timestamptz",
    "json": "jsonb",
    "bool": "boolean",
}


_INITIAL = (
    """CREATE TABLE candidates (
        id {id},
        slug {text} NOT NULL,
        branch {text} NOT NULL,
        sha {text} NOT NULL,
        state {text} NOT NULL,
        seq {int} NOT NULL CHECK (seq >= 0),
        submitted_at {time} NOT NULL,
        updated_at {time} NOT NULL
    )""",
    # One unintegrated candidate per slug: the slug names one work item.
    # Version 2 replaces this index and candidates_queue by ones on flag columns.
    """CREATE UNIQUE INDEX candidates_active_slug
        ON candidates (slug) WHERE state <> 'integrated'""",
    "CREATE INDEX candidates_slug ON candidates (slug, id)",
    "CREATE INDEX candidates_state ON candidates (state, id)",
    """CREATE INDEX candidates_queue ON candidates (updated_at, id)
        WHERE state IN ('pending', 'retry')""",
    """CREATE TABLE transitions (
        id {id},
        candidate_id {ref} NOT NULL REFERENCES candidates (id),
        seq {int} NOT NULL CHECK (seq >= 1),
        event {text} NOT NULL,
        source {text},
        dest {text} NOT NULL,
        sha {text} NOT NULL,
        actor {text} NOT NULL,
        at {time} NOT NULL,
        reason {text},
        idempotency_key {text},
        CONSTRAINT transitions_candidate_id_seq_key UNIQUE (candidate_id, seq)
    )""",
    """CREATE UNIQUE INDEX transitions_idempotency
        ON transitions (candidate_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
    "CREATE INDEX transitions_at ON transitions (at)",
    """CREATE TABLE integration_blocked_outcomes (
        id {id},
        slug {text} NOT NULL,
        branch {text} NOT NULL,
        sha {text} NOT NULL,
        reason {text} NOT NULL,
        main_sha {text} NOT NULL,
        follow_up_slug {text} NOT NULL UNIQUE,
        previous_follow_up {text},
        status {text} NOT NULL CHECK (status IN ('open', 'resumed')),
        follow_up_state {text} NOT NULL,
        follow_up_error {text},
        blocked_at {time} NOT NULL,
        last_blocked_at {time} NOT NULL,
        resumed_at {time},
        occurrences {int} NOT NULL CHECK (occurrences >= 1),
        UNIQUE (slug, branch, sha)
    )""",
    "CREATE INDEX blocked_last ON integration_blocked_outcomes (last_blocked_at, id)",
    """CREATE INDEX blocked_reason
        ON integration_blocked_outcomes (reason, last_blocked_at, id)""",
    "CREATE INDEX blocked_slug ON integration_blocked_outcomes (slug, id)",
    """CREATE TABLE blocked_evidence (
        id {id},
        blocked_id {ref} NOT NULL REFERENCES integration_blocked_outcomes (id),
        number {int} NOT NULL CHECK (number >= 1),
        seq {int} NOT NULL,
        at {time} NOT NULL,
        report {json} NOT NULL,
        UNIQUE (blocked_id, number)
    )""",
    """CREATE TABLE follow_up_outbox (
        id {id},
        follow_up_slug {text} NOT NULL UNIQUE,
        blocked_id {ref} NOT NULL REFERENCES integration_blocked_outcomes (id),
        created_at {time} NOT NULL,
        attempts {int} NOT NULL DEFAULT 0,
        done_at {time},
        last_error {text}
    )""",
    """CREATE INDEX follow_up_outbox_pending ON follow_up_outbox (id)
        WHERE done_at IS NULL""",
    """CREATE TABLE leases (
        name {text} PRIMARY KEY,
        owner {text} NOT NULL,
        candidate_id {ref} REFERENCES candidates (id),
        acquired_at {time} NOT NULL,
        expires_at {time} NOT NULL
    )""",
)

# The state sets live in the lifecycle table, not here: the write path sets
# ``active`` and ``queued`` from the compiled step (Step.active, Step.queued),
# and every index and query filters on the flags, so a new state needs no SQL
# change. The backfill of rows written before version 2 names the sets as they
# were when it was written: frozen, so this migration never changes with the table.
_FLAGS = (
    "ALTER TABLE candidates ADD COLUMN active {bool} NOT NULL DEFAULT TRUE",
    "ALTER TABLE candidates ADD COLUMN queued {bool} NOT NULL DEFAULT FALSE",
    "UPDATE candidates SET active = state IN "
    "('applying', 'blocked', 'pending', 'remediating', 'retry'), "
    "queued = state IN ('pending', 'retry')",
    "DROP INDEX candidates_active_slug",
    "CREATE UNIQUE INDEX candidates_active_slug ON candidates (slug) WHERE active",
    "DROP INDEX candidates_queue",
    "CREATE INDEX candidates_queue ON candidates (updated_at, id) WHERE queued",
    # The digest of the request behind an idempotency key (Transition.request_digest).
    "ALTER TABLE transitions ADD COLUMN request_digest {text}",
)

# A move writes the fewest pages it can (docs/performance.md, figure 1).
# ``candidates_state`` changed on every move, since every move changes the
# state; the one query that used it, ``Store.candidates(state)``, reads the
# candidates table instead, which holds one row per work item, not per move.
# ``transitions_at`` cost a page on every move and served no query of
# mergegate's: the history of a candidate is read through the log's
# ``(candidate_id, seq)`` key, and only an ad-hoc scan of every move over a
# window (docs/storage-schema.md) filtered on ``at`` alone.
# The lease row is rewritten by every start and end of an apply: in SQLite a
# table keyed by text keeps a separate index for its key, one more page per
# write, which a WITHOUT ROWID table (stored in its key's order) does not.
# PostgreSQL has no such distinction, so it keeps its table.
_LEANER_MOVES = (
    "DROP INDEX candidates_state",
    "DROP INDEX transitions_at",
    Only(
        "sqlite",
        """CREATE TABLE leases_v3 (
        name {text} PRIMARY KEY,
        owner {text} NOT NULL,
        candidate_id {ref} REFERENCES candidates (id),
        acquired_at {time} NOT NULL,
        expires_at {time} NOT NULL
    ) WITHOUT ROWID""",
    ),
    Only(
        "sqlite",
        "INSERT INTO leases_v3 (name, owner, candidate_id, acquired_at, expires_at) "
        "SELECT name, owner, candidate_id, acquired_at, expires_at FROM leases",
    ),
    Only("sqlite", "DROP TABLE leases"),
    Only("sqlite", "ALTER TABLE leases_v3 RENAME TO leases"),
)

# PostgreSQL: the Engine's fast path (mergegate.statemachine.move) as ONE call,
# so a plain move costs one round trip instead of one per read plus the commit.
# The function knows nothing of the lifecycle: the client passes the event's
# steps (source state -> destination, flags, effects) from the table, so a new
# state or rule needs no new SQL. Every check comes before the first write and
# a failed check returns no row, so a decline commits nothing; the client then
# fires the request through the general path, which decides what went wrong.
# The advisory locks are the ones the general path takes (keys computed by the
# client), so the two paths serialize against each other.
_MOVE_FUNCTION = """CREATE OR REPLACE FUNCTION mergegate_move(
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

# The builds a CI runs for a merge commit (issue 26): written when a build is
# triggered, before it is waited on, so a restarted integrator finds the builds
# of a merge still running and waits on them instead of triggering again; and
# kept once finished, so a check that failed and then passed (flaky) can be
# shown and counted. Times are ISO text on every backend: rows are few and
# read by key, never by time range.
_CHECK_BUILDS = (
    """CREATE TABLE check_builds (
        id {id},
        slug {text} NOT NULL,
        candidate_sha {text} NOT NULL,
        base_sha {text} NOT NULL,
        merge_sha {text} NOT NULL,
        check_name {text} NOT NULL,
        attempt {int} NOT NULL,
        runner {text} NOT NULL,
        build_id {text} NOT NULL,
        url {text},
        state {text} NOT NULL,
        exit_code {int},
        triggered_at {text} NOT NULL,
        finished_at {text}
    )""",
    "CREATE INDEX check_builds_merge ON check_builds (slug, candidate_sha, base_sha)",
)

# The change feed (persistence/feed.py): on PostgreSQL every log row records its
# writer's transaction id, and the feed reads in (tx, id) order below the oldest
# running transaction. Rows written before this version take the migrating
# transaction's id: they stay first, in id order. SQLite needs nothing: its row
# ids are in commit order already. The wake-up is no trigger: a NOTIFY inside the
# writing transaction serializes every notifying commit of the cluster through
# its WAL flush (PreCommit_Notify's lock), which cut concurrent moves by more than
# half; the store sends it after the commit instead (PostgresDatastore.wake).
_CHANGE_FEED = (
    Only(
        "postgresql",
        "ALTER TABLE transitions ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id()",
    ),
    Only("postgresql", "CREATE INDEX transitions_feed ON transitions (tx, id)"),
)

# The read side of the queue (``list``, ``blocked``, the status page): the
# active candidates are read through their own index, so the queue costs what
# it holds, not what was ever stored (docs/performance.md, "Reading the queue").
# A move sets ``active`` only when it changes (sqltransaction._move_sql), so on
# SQLite this index is written on submit and on leaving the active set only.
# ``blocked`` (the open outcomes, newest first) likewise reads the open ones
# only; a row enters or leaves this index on a block and on a resume.
_ACTIVE_READS = (
    "CREATE INDEX candidates_active ON candidates (id) WHERE active",
    """CREATE INDEX blocked_open ON integration_blocked_outcomes (last_blocked_at, id)
        WHERE status = 'open'""",
)

# Queue order is stored, not derived from the last move's time: ``queue_pos``
# is set when a candidate enters the queue by submit (or re-enters it by
# resume) and kept by every other move, so a requeued link, a restarted
# integrator and any number of concurrent claimers all see one order
# (docs/postgres.md, "Queue order"). The literals below are frozen: they name
# the columns and states as they were when this migration was written.
# Rows written before it keep their order: finished and applying rows are
# numbered by id, the queued ones after all of them in the order the old
# head query took them (last move, then id).
_QUEUE_POSITION = (
    "ALTER TABLE candidates ADD COLUMN queue_pos {ref}",
    "UPDATE candidates SET queue_pos = id",
    "UPDATE candidates SET queue_pos = (SELECT MAX(m.id) FROM candidates m) + "
    "(SELECT COUNT(*) FROM candidates o WHERE o.queued AND (o.updated_at < candidates.updated_at "
    "OR (o.updated_at = candidates.updated_at AND o.id <= candidates.id))) WHERE queued",
    "DROP INDEX candidates_queue",
    "CREATE INDEX candidates_queue ON candidates (queue_pos, id) WHERE queued",
    # SQLite hands out the next position as MAX + 1 inside its single writer's
    # transaction; the index makes that one page read.
    Only("sqlite", "CREATE INDEX candidates_queue_pos ON candidates (queue_pos)"),
    # PostgreSQL writers run concurrently: a sequence never hands one number out
    # twice, and as the column's default it also numbers the rows that
    # mergegate_move (migration 4) inserts.
    Only("postgresql", "CREATE SEQUENCE candidates_queue_pos_seq AS bigint"),
    Only(
        "postgresql",
        "SELECT setval('candidates_queue_pos_seq', "
        "COALESCE((SELECT MAX(queue_pos) FROM candidates), 0) + 1, false)",
    ),
    Only("postgresql", "ALTER SEQUENCE candidates_queue_pos_seq OWNED BY candidates.queue_pos"),
    Only(
        "postgresql",
        "ALTER TABLE candidates ALTER COLUMN queue_pos SET DEFAULT "
        "nextval('candidates_queue_pos_seq')",
    ),
    Only("postgresql", "ALTER TABLE candidates ALTER COLUMN queue_pos SET NOT NULL"),
)

# One store per repository: the store records the repository it serves (its
# root commit) and its own id, which ``init`` writes into the repository's git
# config; a command that can move main refuses a pair that does not match.
# The acknowledged outside moves of main are what ``verify`` accepts besides
# mergegate's own merges. Both tables are written once per row, never updated.
_LEDGER = (
    """CREATE TABLE store_identity (
        id {int} PRIMARY KEY CHECK (id = 1),
        store_id {text} NOT NULL,
        repository {text} NOT NULL,
        bound_at {time} NOT NULL,
        bound_by {text} NOT NULL
    )""",
    """CREATE TABLE acknowledged_moves (
        sha {text} PRIMARY KEY,
        why {text} NOT NULL,
        actor {text} NOT NULL,
        at {time} NOT NULL
    )""",
)

# An idempotency key names one request forever, whatever happened since (a
# withdraw that released the slug included): unique over the whole log, not
# per candidate. A store whose log already reuses a key across candidates
# fails this step with the constraint's error and stays at version 9.
_GLOBAL_KEYS = (
    "DROP INDEX transitions_idempotency",
    """CREATE UNIQUE INDEX transitions_idempotency
        ON transitions (idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
)

# An operator's approval of one candidate, at one exact sha, changing the
# integrator's configuration (reason config_changed). Written once per row,
# never updated: a later sha of the slug is another change, approved anew.
_APPROVALS = (
    """CREATE TABLE approvals (
        slug {text} NOT NULL,
        sha {text} NOT NULL,
        why {text} NOT NULL,
        actor {text} NOT NULL,
        at {time} NOT NULL,
        PRIMARY KEY (slug, sha)
    )""",
)

# Facts in their own columns (issue 23): who took the lease (a chain's links
# name its owner), the main commit an integrate recorded, and why an apply was
# interrupted (a run of them blocks the candidate). They were written into the
# note as "lease owner=<owner>", "main=<sha>" and "interrupted: <cause>" and
# parsed back; the
# rows written before this version get their columns from those notes, once,
# here. The note keeps its text for people. The server-side move takes the
# main sha and writes both (the old function is dropped: a new signature would
# otherwise sit beside it as an overload).
_OLD_MOVE_SIGNATURE = (
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
_MOVE_FUNCTION_V13 = _edited(
    _MOVE_FUNCTION,
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
_FACT_COLUMNS = (
    "ALTER TABLE transitions ADD COLUMN lease_owner {text}",
    "ALTER TABLE transitions ADD COLUMN main_sha {text}",
    "ALTER TABLE transitions ADD COLUMN interrupted {text}",
    "UPDATE transitions SET lease_owner = substr(reason, 13) "
    "WHERE event = 'start_apply' AND reason LIKE 'lease owner=%'",
    "UPDATE transitions SET main_sha = substr(reason, 6) "
    "WHERE event = 'integrate' AND reason LIKE 'main=%'",
    "UPDATE transitions SET interrupted = substr(reason, 14) "
    "WHERE event = 'requeue' AND reason LIKE 'interrupted: %'",
    Only("postgresql", f"DROP FUNCTION {_OLD_MOVE_SIGNATURE}"),
    Only("postgresql", _MOVE_FUNCTION_V13),
)


# Queue controls (issue 25): an operator's pause, drain and promote, each a row
# written once (who, when, why), never updated; what is in force is the newest
# row of its pair, found through its partial index. The server-side move is
# migration 13's, declining (so the general path raises) a lease-taking step
# while the queue is paused and a new candidate while it is draining; the
# literals are frozen with this migration.
_PAUSED = (
    "(SELECT q.action FROM queue_controls q WHERE q.action IN ('pause', 'unpause') "
    "ORDER BY q.id DESC LIMIT 1) = 'pause'"
)
_DRAINING = (
    "(SELECT q.action FROM queue_controls q WHERE q.action IN ('drain', 'undrain') "
    "ORDER BY q.id DESC LIMIT 1) = 'drain'"
)
_MOVE_FUNCTION_V14 = _edited(
    _MOVE_FUNCTION_V13,
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
_QUEUE_CONTROLS = (
    """CREATE TABLE queue_controls (
        id {id},
        action {text} NOT NULL,
        actor {text} NOT NULL,
        at {time} NOT NULL,
        why {text},
        slug {text},
        requeue {bool} NOT NULL DEFAULT FALSE
    )""",
    """CREATE INDEX queue_controls_pause ON queue_controls (id)
        WHERE action IN ('pause', 'unpause')""",
    """CREATE INDEX queue_controls_drain ON queue_controls (id)
        WHERE action IN ('drain', 'undrain')""",
    Only("postgresql", _MOVE_FUNCTION_V14),
)


#: The schema's history, as templates (see the module docstring).
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", _INITIAL),
    Migration(2, "state flags and request digest", _FLAGS),
    Migration(3, "leaner moves", _LEANER_MOVES),
    Migration(4, "one call per move", (Only("postgresql", _MOVE_FUNCTION),)),
    Migration(5, "change feed", _CHANGE_FEED),
    # When a resume found the follow-up resolved (BlockedRecord.resolved_at).
    Migration(
        6,
        "resolved time",
        ("ALTER TABLE integration_blocked_outcomes ADD COLUMN resolved_at {time}",),
    ),
    Migration(7, "indexes of the active queue and the open blocks", _ACTIVE_READS),
    Migration(8, "stored queue position", _QUEUE_POSITION),
    Migration(9, "store identity and acknowledged moves", _LEDGER),
    Migration(10, "global idempotency keys", _GLOBAL_KEYS),
    Migration(11, "check builds", _CHECK_BUILDS),
    Migration(12, "configuration approvals", _APPROVALS),
    Migration(13, "facts in columns: lease owner, main sha, interruption", _FACT_COLUMNS),
    Migration(14, "queue controls: pause, drain, promote", _QUEUE_CONTROLS),
)


def render(types: Mapping[str, str], backend: str | None = None) -> tuple[Migration, ...]:
    """:data:`MIGRATIONS` with the column types of one dialect filled in.

    With ``backend``, a statement marked :class:`Only` for another backend is
    left out; without it, every statement is kept.
    """

    def keep(statement: str | Only) -> str | None:
        if isinstance(statement, str):
            return statement.format_map(types)
        if backend is None or statement.backend == backend:
            return statement.sql.format_map(types)
        return None

    return tuple(
        Migration(
            m.version,
            m.name,
            tuple(s for s in map(keep, m.statements) if s is not None),
        )
        for m in MIGRATIONS
    )


SQLITE_MIGRATIONS = render(SQLITE_TYPES, "sqlite")
POSTGRES_MIGRATIONS = render(POSTGRES_TYPES, "postgresql")
