"""The read side of the queue on every store: active candidates, a window of the log, recent
apply times, a slug range, the open blocks; the same answers on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from mergegate.persistence.contract import T0, ManualClock, conflict_report
from mergegate.statemachine import CandidateKey, Engine, State, Store


def _key(slug: str, n: int) -> CandidateKey:
    return CandidateKey(slug, slug, f"{n:040x}")


def _queue(store: Store) -> ManualClock:
    """done-1, done-2 integrated (10 s and 30 s applies); stuck blocked; wait-a, wait-b pending."""
    clock = ManualClock()
    engine = Engine(store, clock=clock)
    for n, (slug, seconds) in enumerate((("done-1", 10), ("done-2", 30)), start=1):
        engine.submit(_key(slug, n))
        clock.advance(minutes=1)
        engine.start_apply(slug, owner="w1")
        clock.advance(seconds=seconds)
        engine.integrate(slug, main_sha="0" * 40)
    clock.advance(hours=1)
    engine.submit(_key("stuck", 3))
    engine.start_apply("stuck", owner="w1")
    engine.block("stuck", conflict_report())
    engine.submit(_key("wait-a", 4))
    engine.submit(_key("wait-b", 5))
    return clock


def test_active_candidates_are_the_unfinished_ones(store: Store) -> None:
    """active_candidates: blocked and pending, by id; none of the integrated."""
    _queue(store)
    active = store.active_candidates()
    assert [(c.key.slug, c.state) for c in active] == [
        ("stuck", State.BLOCKED),
        ("wait-a", State.PENDING),
        ("wait-b", State.PENDING),
    ]
    ids = [c.id for c in store.candidates()]
    assert [c.key.slug for c in store.candidates_by_ids([ids[1], ids[0], 999_999])] == [
        "done-1",
        "done-2",
    ]


def test_log_since_is_the_window_in_the_order_written(store: Store) -> None:
    """log_since: the entries at or after the time, oldest first; nothing after the last."""
    clock = _queue(store)
    window = store.log_since(T0 + timedelta(minutes=30))
    assert [(t.event.value, t.dest.value) for t in window] == [
        ("submit", "pending"),
        ("start_apply", "applying"),
        ("block", "blocked"),
        ("submit", "pending"),
        ("submit", "pending"),
    ]
    assert len(store.log_since(T0)) == len(list(store.log()))
    assert store.log_since(clock.now + timedelta(seconds=1)) == []
    assert store.last_move_at() == window[-1].at


def test_recent_apply_seconds_are_newest_first(store: Store) -> None:
    """recent_apply_seconds: start_apply to integrate of each integration, newest first."""
    _queue(store)
    assert [round(s) for s in store.recent_apply_seconds(20)] == [30, 10]
    assert [round(s) for s in store.recent_apply_seconds(1)] == [30]


def test_slugs_are_a_bounded_prefix_range(store: Store) -> None:
    """slugs: the distinct slugs with a prefix, sorted, cut at the limit."""
    _queue(store)
    assert store.slugs("wait-") == ["wait-a", "wait-b"]
    assert store.slugs("") == ["done-1", "done-2", "stuck", "wait-a", "wait-b"]
    assert store.slugs("", limit=2) == ["done-1", "done-2"]
    assert store.slugs("nothing") == []


def test_open_blocks_are_read_by_status(store: Store) -> None:
    """blocked_records(status="open"): the open outcome; "resumed" after a resume."""
    _queue(store)
    assert [b.key.slug for b in store.blocked_records(status="open")] == ["stuck"]
    assert store.blocked_records(status="resumed") == []
