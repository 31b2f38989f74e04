"""The PostgreSQL store's wake-ups: coalesced into one NOTIFY per window, the last never lost."""

from __future__ import annotations

import time

import pytest

from mergegate.persistence import PostgresStore
from mergegate.persistence.feed import CHANNEL, NOTIFY_EVERY
from mergegate.statemachine import CandidateKey, Engine

pytestmark = pytest.mark.postgres


def test_a_burst_of_moves_sends_one_notify_per_window_and_one_after_the_last(
    pg_server: str, pg_schema: str
) -> None:
    """Two hundred submits in a row wake listeners at most once per window, and at the end."""
    import psycopg

    with psycopg.connect(pg_server, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        store = PostgresStore(pg_server, schema=pg_schema)
        engine = Engine(store)
        started = time.monotonic()
        for i in range(200):
            engine.submit(CandidateKey(f"burst-{i}", f"burst-{i}", f"{i:040x}"))
        elapsed = time.monotonic() - started
        store.close()  # sends the wake-up still pending
        ours = [n for n in listener.notifies(timeout=1.0) if n.payload == pg_schema]
    seen = f"{len(ours)} NOTIFYs for 200 moves in {elapsed:.3f} s"
    # Before the window, nearly every move sent its own: 196 of 200 in 0.433 s.
    assert len(ours) <= elapsed / NOTIFY_EVERY + 2, seen
    assert len(ours) >= 1, seen  # the last move's wake-up is never lost
