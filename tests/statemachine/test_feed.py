"""The change feed: a global gap-free cursor over the log, and a wake-up instead of a poll."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    CandidateKey,
    Change,
    ChangeFeed,
    Engine,
    Event,
    InvalidInput,
    State,
    follow,
)

#: PostgreSQL's change feed shows nothing past the cluster's oldest running write
#: transaction (persistence/feed.py), however unrelated, so these run after the
#: parallel phase of CI, alone (tox.ini, marker ``serial``).
pytestmark = pytest.mark.serial

Opener = Callable[[], Any]


def settle(store: Any, after: int, count: int) -> list[Change]:
    """The first ``count`` changes after ``after``, waiting for them to become readable.

    On a shared PostgreSQL server another session's running transaction holds
    the feed's horizon back for a while (it never makes it skip): wait, as a
    reader does, instead of expecting every commit to be readable at once.
    """
    deadline = time.monotonic() + 30
    seen: list[Change] = []
    cursor = after
    while len(seen) < count and time.monotonic() < deadline:
        batch = store.changes(after=cursor)
        seen += batch
        if batch:
            cursor = batch[-1].cursor
        else:
            store.wait_for_change(cursor, 1.0)
    assert len(seen) >= count, f"only {len(seen)} of {count} changes became readable: {seen}"
    return seen


def key(n: int) -> CandidateKey:
    """A candidate identity numbered ``n``."""
    return CandidateKey(f"c{n}", f"c{n}", f"{n:x}".rjust(40, "a"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores on one fresh database (each call a new connection); closes them all after."""
    opened: list[Any] = []

    def open_one() -> Any:
        if request.param == "sqlite":
            store: Any = SQLiteStore(tmp_path / "feed.sqlite3")
        else:
            from mergegate.persistence import PostgresStore

            store = PostgresStore(
                request.getfixturevalue("pg_server"), schema=request.getfixturevalue("pg_schema")
            )
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def test_changes_come_in_commit_order_and_resume_from_a_cursor(opener: Opener) -> None:
    """Every move appears once, in order; reading from a saved cursor gives the rest."""
    store = opener()
    assert isinstance(store, ChangeFeed)
    assert store.changes() == []
    assert store.feed_head() == 0
    engine = Engine(store)
    for n in range(3):
        engine.submit(key(n))
    engine.start_apply("c0", owner="w")
    everything = settle(store, 0, 4)
    assert store.changes() == everything
    assert [(c.key.slug, c.transition.event) for c in everything] == [
        ("c0", Event.SUBMIT),
        ("c1", Event.SUBMIT),
        ("c2", Event.SUBMIT),
        ("c0", Event.START_APPLY),
    ]
    cursors = [c.cursor for c in everything]
    assert cursors == sorted(cursors)
    assert len(set(cursors)) == 4
    assert store.feed_head() == cursors[-1]
    assert store.changes(after=cursors[1]) == everything[2:]
    assert store.changes(after=cursors[0], limit=2) == everything[1:3]
    assert everything[3].transition.dest is State.APPLYING


def test_a_bad_cursor_or_limit_is_refused(opener: Opener) -> None:
    """A negative cursor or a zero limit is a clear InvalidInput."""
    store = opener()
    with pytest.raises(InvalidInput, match="cursor"):
        store.changes(after=-1)
    with pytest.raises(InvalidInput, match="limit"):
        store.changes(limit=0)
    with pytest.raises(InvalidInput, match="cursor"):
        store.wait_for_change(-5, 0.1)


def test_an_idle_waiter_wakes_on_another_stores_commit(opener: Opener) -> None:
    """wait_for_change returns True soon after another connection commits a move."""
    waiter, writer = opener(), opener()
    head = waiter.feed_head()
    assert waiter.wait_for_change(head, 0.05) is False
    woke: list[tuple[bool, float]] = []

    def wait() -> None:
        start = time.monotonic()
        woke.append((waiter.wait_for_change(head, 20.0), time.monotonic() - start))

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.2)
    Engine(writer).submit(key(7))
    thread.join(30)
    assert [w[0] for w in woke] == [True], f"the waiter saw no change: {woke}"
    assert [c.key.slug for c in waiter.changes(after=head)] == ["c7"]


def test_a_waiter_sees_its_own_stores_commits(opener: Opener) -> None:
    """A commit through the waiting store's own connection wakes it too."""
    store = opener()
    Engine(store).submit(key(1))
    head = store.feed_head()
    timer = threading.Timer(0.1, lambda: Engine(store).submit(key(2)))
    timer.start()
    assert store.wait_for_change(head, 20.0) is True, store.changes(after=head)
    timer.join()


def test_follow_yields_every_change_and_stops_when_idle(opener: Opener) -> None:
    """follow() reads the whole log, then stops after the idle rounds it was given."""
    store = opener()
    engine = Engine(store)
    for n in range(5):
        engine.submit(key(n))
    settle(store, 0, 5)
    seen = [c.key.slug for c in follow(store, timeout=0.05, idle_rounds=1)]
    assert seen == [f"c{n}" for n in range(5)]


@pytest.mark.postgres
def test_postgres_never_skips_a_row_committed_later_with_a_smaller_id(
    pg_server: str, pg_schema: str
) -> None:
    """A transaction that took a smaller id but commits later is read, not skipped."""
    import psycopg
    from psycopg import sql

    from mergegate.persistence import PostgresStore

    store = PostgresStore(pg_server, schema=pg_schema)
    seen: list[Change] = []
    try:
        engine = Engine(store)
        engine.submit(key(1))
        with psycopg.connect(pg_server) as slow:
            slow.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
            # The slow writer takes its ids first and holds its transaction open.
            cid = slow.execute(
                "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, "
                "updated_at, active, queued) VALUES ('slow', 'slow', %s, 'pending', 1, now(), "
                "now(), true, true) RETURNING id",
                ("b" * 40,),
            ).fetchone()
            assert cid is not None
            slow.execute(
                "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at) "
                "VALUES (%s, 1, 'submit', NULL, 'pending', %s, 'slow', now())",
                (cid[0], "b" * 40),
            )
            engine.submit(key(2))  # a larger id, committed first
            seen += store.changes()
            early = [c.key.slug for c in seen if c.key.slug in ("slow", "c2")]
            assert early == [], f"read past a running writer: {seen}"
            slow.commit()
        cursor = seen[-1].cursor if seen else 0
        seen += settle(store, cursor, 3 - len(seen))
        assert [c.key.slug for c in seen] == ["c1", "slow", "c2"], seen
        assert store.changes() == seen
    finally:
        store.close()


@pytest.mark.postgres
def test_a_short_lived_process_wakes_a_postgres_waiter(pg_server: str, pg_schema: str) -> None:
    """A process that submits and closes its store at once (as the CLI does) wakes a waiter."""
    import subprocess
    import sys

    from mergegate.persistence import PostgresStore

    waiter = PostgresStore(pg_server, schema=pg_schema)
    try:
        head = waiter.feed_head()
        results: list[bool] = []
        thread = threading.Thread(target=lambda: results.append(waiter.wait_for_change(head, 60)))
        thread.start()
        time.sleep(0.3)  # the waiter is listening
        code = (
            "import sys\n"
            "from mergegate.persistence import PostgresStore\n"
            "from mergegate.statemachine import CandidateKey, Engine\n"
            "store = PostgresStore(sys.argv[1], schema=sys.argv[2])\n"
            "Engine(store).submit(CandidateKey('brief', 'brief', 'e' * 40))\n"
            "store.close()\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, pg_server, pg_schema],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        thread.join(90)
        # Without the NOTIFY the waiter would sleep its whole 60 s and say False.
        assert results == [True], f"the waiter was not woken: {results}"
        assert [c.key.slug for c in settle(waiter, head, 1)] == ["brief"]
    finally:
        waiter.close()
