"""SIGKILL a child driving the whole flow at chosen points; recovery loses and doubles nothing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

FAST_KILLS = 10
SLOW_KILLS = 200


def test_kills_fast_subset_sqlite(
    make_world: Any, tmp_path: Any, kit: Any, tally: Counter[str]
) -> None:
    """Ten kills on SQLite, at least one at each kill point; every invariant holds after each."""
    world = make_world(f"sqlite://{tmp_path / 'store.sqlite3'}")
    report = kit.kill_loop(world, FAST_KILLS, 1, tally, "sqlite_fast")
    assert report.kills == FAST_KILLS
    assert set(report.points) >= {"tx", "hook", "check", "heartbeat", "integrate"}


@pytest.mark.slow
def test_kills_sqlite(make_world: Any, tmp_path: Any, kit: Any, tally: Counter[str]) -> None:
    """Two hundred kills on SQLite at every kill point; every invariant holds after each."""
    world = make_world(f"sqlite://{tmp_path / 'store.sqlite3'}")
    report = kit.kill_loop(world, SLOW_KILLS, 2, tally, "sqlite")
    assert report.kills == SLOW_KILLS
    assert min(report.points[p] for p in ("tx", "hook", "check", "heartbeat", "integrate")) >= 20


@pytest.mark.slow
@pytest.mark.postgres
def test_kills_postgres(make_world: Any, pg_url: str, kit: Any, tally: Counter[str]) -> None:
    """Two hundred kills on PostgreSQL at every kill point; every invariant holds after each."""
    world = make_world(pg_url)
    report = kit.kill_loop(world, SLOW_KILLS, 3, tally, "postgres")
    assert report.kills == SLOW_KILLS
    assert min(report.points[p] for p in ("tx", "hook", "check", "heartbeat", "integrate")) >= 20
