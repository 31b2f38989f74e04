"""The persisted peers of figure 1, each a loop returning seconds per persisted move.

Every loop drives fresh candidates through the same three moves as the Engine
loop (submit, start_apply, integrate), one durable commit per move, on a SQLite
file in WAL mode at ``synchronous=FULL`` (the store's own setting; SQLite's
default too, which is what eventsourcing runs with):

- :func:`raw_insert`: one ``INSERT`` into mergegate's ``transitions`` table per
  ``BEGIN IMMEDIATE``/``COMMIT``, the least any durable log can do;
- :func:`equal_work`: the statements the SQLite store issues for each move,
  written by hand (see ``equal_work.SQLITE_CYCLE``), with no Python around them;
- :func:`transitions_log`: a `transitions` machine and a hand-written log table,
  one ``INSERT`` per move from an ``after_state_change`` callback;
- :func:`eventsourcing_app`: an eventsourcing ``Application`` saving an
  aggregate after each event, on its SQLite persistence module;
- :func:`eventsourcing_recorder`: eventsourcing's SQLite recorder alone, one
  ``insert_events`` per event.
- :func:`commit_probe`: a bare ``BEGIN; INSERT; COMMIT`` on a one-column table;
  run at ``FULL`` and at ``OFF`` beside the figure, the difference is what one
  fsync costs on this disk at this moment.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from equal_work import SQLITE_CYCLE
from measure import timed
from workload import BASE_TIME, SHA, bare_machine

from mergegate.persistence import SQLiteStore
from mergegate.persistence.codec import dump_time

__all__ = [
    "Loop",
    "commit_probe",
    "equal_work",
    "eventsourcing_app",
    "eventsourcing_recorder",
    "fsync_seconds",
    "raw_insert",
    "transitions_log",
]

# ``run(n)`` persists about ``n`` moves and returns seconds per move.
Loop = Callable[[int], float]
_serial = itertools.count()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _stamp() -> str:
    return dump_time(datetime.now(UTC))


def raw_insert(path: Path) -> tuple[Loop, sqlite3.Connection]:
    """One INSERT per BEGIN IMMEDIATE/COMMIT into the real schema's log table."""
    SQLiteStore(path).close()  # the real schema, so the insert maintains the same indexes
    conn = _connect(path)
    stamp = dump_time(BASE_TIME)
    cid = conn.execute(
        "INSERT INTO candidates (slug, branch, sha, state, seq, submitted_at, updated_at) "
        "VALUES ('raw', 'feature/raw', ?, 'pending', 0, ?, ?)",
        (SHA, stamp, stamp),
    ).lastrowid
    seq = itertools.count(1)
    sql = (
        "INSERT INTO transitions (candidate_id, seq, event, source, dest, sha, actor, at) "
        "VALUES (?, ?, 'start_apply', 'pending', 'applying', ?, 'raw', ?)"
    )

    def run(n: int) -> float:
        def loop() -> None:
            for _ in range(n):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(sql, (cid, next(seq), SHA, stamp))
                conn.execute("COMMIT")

        return timed(loop) / n

    return run, conn


def equal_work(path: Path) -> tuple[Loop, sqlite3.Connection, Callable[[], object]]:
    """The store's statements for submit, start_apply and integrate, by hand.

    Also returns one cycle on its own, for the statement check.
    """
    SQLiteStore(path).close()
    conn = _connect(path)
    (submit, start, integrate) = SQLITE_CYCLE
    ex = conn.execute

    def cycle() -> None:
        slug = f"eq-{next(_serial)}"
        branch = f"feature/{slug}"
        at = _stamp()
        ex(submit[0])
        ex(submit[1], (slug,)).fetchone()
        ex(submit[2]).fetchall()
        cid = ex(submit[3], (slug, branch, SHA, at, at)).lastrowid
        ex(submit[4], (cid, SHA, "mergegate", at))
        ex(submit[5])
        at = _stamp()
        ex(start[0])
        ex(start[1], (slug,)).fetchone()
        ex(start[2]).fetchall()
        ex(start[3], ("main",)).fetchone()
        ex(start[4], ("main", "bench", cid, at, at))
        ex(start[5], (cid, 1, 2, "start_apply", "pending", "applying", SHA, "mergegate", at,
                      "lease owner=bench", "bench", None))  # fmt: skip
        ex(start[6], (at, cid))
        ex(start[7])
        at = _stamp()
        ex(integrate[0])
        ex(integrate[1], (slug,)).fetchone()
        ex(integrate[2], (cid, 2, 3, "integrate", "applying", "integrated", SHA, "mergegate", at,
                          "main=x", None, "x"))  # fmt: skip
        ex(integrate[3], (at, cid))
        ex(integrate[4], ("main", cid))
        ex(integrate[5])

    def run(n: int) -> float:
        cycles = max(1, n // 3)

        def loop() -> None:
            for _ in range(cycles):
                cycle()

        return timed(loop) / (3 * cycles)

    return run, conn, cycle


class _Model:
    """A `transitions` model that knows its slug and its log's next sequence number."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.seq = 0


def transitions_log(path: Path) -> Loop:
    """A shared `transitions` machine; each state change appends one row to a hand-made log."""
    conn = _connect(path)
    conn.execute(
        "CREATE TABLE log (id INTEGER PRIMARY KEY, slug TEXT NOT NULL, seq INTEGER NOT NULL, "
        "event TEXT NOT NULL, dest TEXT NOT NULL, at TEXT NOT NULL, UNIQUE (slug, seq))"
    )
    insert = "INSERT INTO log (slug, seq, event, dest, at) VALUES (?, ?, ?, ?, ?)"

    def persist(model: _Model, event: str) -> None:
        model.seq += 1
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(insert, (model.slug, model.seq, event, model.state, _stamp()))  # type: ignore[attr-defined]
        conn.execute("COMMIT")

    machine = bare_machine()
    machine.send_event = True  # so the callback receives the model and the event
    machine.after_state_change = lambda event_data: persist(event_data.model, event_data.event.name)

    def run(n: int) -> float:
        cycles = max(1, n // 3)

        def loop() -> None:
            for _ in range(cycles):
                model = _Model(f"tr-{next(_serial)}")
                machine.add_model(model)
                persist(model, "submit")
                model.trigger("start_apply")  # type: ignore[attr-defined]
                model.trigger("integrate")  # type: ignore[attr-defined]
                machine.remove_model(model)

        return timed(loop) / (3 * cycles)

    return run


def eventsourcing_app(path: Path) -> Loop:
    """An eventsourcing Application on SQLite: one ``save()`` after each event."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Candidate(Aggregate):  # type: ignore[misc]
        @event("Submitted")  # type: ignore[misc]
        def __init__(self, slug: str) -> None:
            self.slug = slug
            self.state = "pending"

        @event("Moved")  # type: ignore[misc]
        def move(self, name: str, dest: str) -> None:
            self.state = dest

    app = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
    )

    def run(n: int) -> float:
        cycles = max(1, n // 3)

        def loop() -> None:
            for _ in range(cycles):
                c = Candidate(f"es-{next(_serial)}")
                app.save(c)
                c.move("start_apply", "applying")
                app.save(c)
                c.move("integrate", "integrated")
                app.save(c)

        return timed(loop) / (3 * cycles)

    return run


def eventsourcing_recorder(path: Path) -> Loop:
    """eventsourcing's SQLite application recorder alone: one ``insert_events`` per event."""
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    recorder = SQLiteApplicationRecorder(SQLiteDatastore(str(path)))
    recorder.create_table()
    topic = "bench:Moved"
    states = (b'{"dest":"pending"}', b'{"dest":"applying"}', b'{"dest":"integrated"}')

    def run(n: int) -> float:
        cycles = max(1, n // 3)

        def loop() -> None:
            for _ in range(cycles):
                oid = uuid.uuid4()
                for version, state in enumerate(states, 1):
                    recorder.insert_events([StoredEvent(oid, version, topic, state)])

        return timed(loop) / (3 * cycles)

    return run


def commit_probe(path: Path, synchronous: str) -> Loop:
    """A bare ``BEGIN; INSERT; COMMIT`` on a one-column table, at the given ``synchronous``."""
    conn = _connect(path)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")

    def run(n: int) -> float:
        def loop() -> None:
            for i in range(n):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t VALUES (?)", (i,))
                conn.execute("COMMIT")

        return timed(loop) / n

    return run


def fsync_seconds(folder: Path, n: int = 50) -> float:
    """Median seconds of ``os.fsync`` after a 4 KiB overwrite, in ``folder``'s file system."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    times = []
    try:
        for _ in range(n):
            os.pwrite(fd, os.urandom(4096), 0)
            times.append(timed(lambda: os.fsync(fd)))
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return times[len(times) // 2]
