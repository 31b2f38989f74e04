"""The tables and indexes of the schema, as each migration wrote them.

One tuple of template statements per migration (see
:mod:`.migration_template`), each with why it was made; :mod:`.migrations`
numbers them. They are history: a new schema is a new tuple, never an edit of
one. PostgreSQL's server-side move is in :mod:`.move_function`.
"""

from __future__ import annotations

from .migration_template import Only
from .move_function import MOVE_FUNCTION_V13, MOVE_FUNCTION_V14, OLD_MOVE_SIGNATURE

__all__ = [
    "INITIAL",
    "FLAGS",
    "LEANER_MOVES",
    "CHECK_BUILDS",
    "CHANGE_FEED",
    "ACTIVE_READS",
    "QUEUE_POSITION",
    "LEDGER",
    "GLOBAL_KEYS",
    "APPROVALS",
    "FACT_COLUMNS",
    "QUEUE_CONTROLS",
]


INITIAL = (
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
FLAGS = (
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
LEANER_MOVES = (
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

# The builds a CI runs for a merge commit (issue 26): written when a build is
# triggered, before it is waited on, so a restarted integrator finds the builds
# of a merge still running and waits on them instead of triggering again; and
# kept once finished, so a check that failed and then passed (flaky) can be
# shown and counted. Times are ISO text on every backend: rows are few and
# read by key, never by time range.
CHECK_BUILDS = (
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
CHANGE_FEED = (
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
ACTIVE_READS = (
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
QUEUE_POSITION = (
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
LEDGER = (
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
GLOBAL_KEYS = (
    "DROP INDEX transitions_idempotency",
    """CREATE UNIQUE INDEX transitions_idempotency
        ON transitions (idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
)

# An operator's approval of one candidate, at one exact sha, changing the
# integrator's configuration (reason config_changed). Written once per row,
# never updated: a later sha of the slug is another change, approved anew.
APPROVALS = (
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
# parsed back; the rows written before this version get their columns from
# those notes, once, here. The note keeps its text for people. The server-side
# move takes the main sha and writes both (:mod:`.move_function`).
FACT_COLUMNS = (
    "ALTER TABLE transitions ADD COLUMN lease_owner {text}",
    "ALTER TABLE transitions ADD COLUMN main_sha {text}",
    "ALTER TABLE transitions ADD COLUMN interrupted {text}",
    "UPDATE transitions SET lease_owner = substr(reason, 13) "
    "WHERE event = 'start_apply' AND reason LIKE 'lease owner=%'",
    "UPDATE transitions SET main_sha = substr(reason, 6) "
    "WHERE event = 'integrate' AND reason LIKE 'main=%'",
    "UPDATE transitions SET interrupted = substr(reason, 14) "
    "WHERE event = 'requeue' AND reason LIKE 'interrupted: %'",
    Only("postgresql", f"DROP FUNCTION {OLD_MOVE_SIGNATURE}"),
    Only("postgresql", MOVE_FUNCTION_V13),
)

# Queue controls (issue 25): an operator's pause, drain and promote, each a row
# written once (who, when, why), never updated; what is in force is the newest
# row of its pair, found through its partial index. The server-side move
# declines what the controls forbid (:mod:`.move_function`).
QUEUE_CONTROLS = (
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
    Only("postgresql", MOVE_FUNCTION_V14),
)
