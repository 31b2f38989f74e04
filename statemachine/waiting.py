"""Waiting for the integration lease instead of polling for it, and taking over a dead one.

``LeaseHeld`` says another apply holds the lease. :func:`start_apply_waiting`
and :func:`start_next_waiting` wait for it (on the store's change feed: a
lease is released by a logged move, which wakes the waiter at once) up to a
timeout, and, given the ``applier``, take over a lease that expired in the
same call: they settle it as ``Engine.recover`` does, with ``main`` held, and
the settling move is logged like any other (an ``interrupt``, a ``requeue``
or an ``integrate``, by whatever rule recovery follows), then start the apply.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from .applier import Applier
from .engine import Engine
from .errors import InvalidInput, LeaseHeld
from .feed import ChangeFeed
from .records import Lease, Outcome

__all__ = ["start_apply_waiting", "start_next_waiting", "take_over"]

#: How long a store without a change feed sleeps between tries, in seconds.
_NO_FEED_POLL = 0.1


def take_over(engine: Engine, applier: Applier) -> list[Outcome]:
    """Settle every expired apply lease now, as ``Engine.recover`` does, with ``main`` held.

    ``contains`` is the applier's own (``GitApplier.contains``) when it has one,
    so an apply that moved ``main`` before it died is integrated, not blocked.
    Returns the recovery's outcomes (empty when no lease had expired).
    """
    with applier.hold_main() as held:
        check: Callable[[str, str], bool] | None = getattr(applier, "contains", None)
        main = held.main_sha

        def contains(sha: str) -> bool:
            assert check is not None
            return check(sha, main)

        return engine.recover(main, contains=None if check is None else contains)


def _lease(engine: Engine) -> Lease | None:
    for lease in engine.store.leases():
        if lease.name == engine.lease_name:
            return lease
    return None


def _wait(engine: Engine, cursor: int, seconds: float) -> None:
    if seconds <= 0:
        return
    if isinstance(engine.store, ChangeFeed):
        engine.store.wait_for_change(cursor, seconds)
    else:
        time.sleep(min(seconds, _NO_FEED_POLL))


def _head(engine: Engine) -> int:
    return engine.store.feed_head() if isinstance(engine.store, ChangeFeed) else 0


def _waiting(
    engine: Engine,
    attempt: Callable[[], Outcome | None],
    *,
    timeout: float,
    applier: Applier | None,
    until_work: bool,
    settled: list[Outcome] | None = None,
) -> Outcome | None:
    if timeout < 0:
        raise InvalidInput("timeout", timeout, "give a number of seconds, 0 or more")
    deadline = time.monotonic() + timeout
    taken: Lease | None = None
    while True:
        # The cursor comes before the attempt: a release committed between the
        # attempt and the wait is after it, so the wait returns at once.
        cursor = _head(engine)
        held: LeaseHeld | None = None
        try:
            started = attempt()
        except LeaseHeld as err:
            started, held = None, err
        if started is not None or (held is None and not until_work):
            return started
        # Held, or no work: a dead holder's apply may be what is missing (an
        # empty queue while it stays ``applying``), so either way, with an
        # applier, an expired lease is taken over before waiting.
        # Once per lease: a lease recovery could not settle is only waited for.
        lease = None if applier is None else _lease(engine)
        watched = None if lease == taken else lease
        if applier is not None and watched is not None and watched.expires_at <= engine.clock():
            taken = watched
            recovered = take_over(engine, applier)
            if settled is not None:
                settled.extend(recovered)
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            if held is not None:
                raise held
            return None
        if watched is not None:
            # Wake when it expires, to take it over, if no move wakes us first.
            until_expiry = (watched.expires_at - engine.clock()).total_seconds()
            left = min(left, max(until_expiry, 0.0) + 0.01)
        _wait(engine, cursor, left)


def next_waiting(
    engine: Engine,
    *,
    owner: str,
    timeout: float,
    applier: Applier | None,
    settled: list[Outcome],
) -> Outcome | None:
    """:func:`start_next_waiting`, adding what a take-over settled to ``settled``.

    For ``run_queue``, which counts the recovered applies; not public.
    """
    return _waiting(
        engine,
        lambda: engine.start_next(owner=owner),
        timeout=timeout,
        applier=applier,
        until_work=True,
        settled=settled,
    )


def start_apply_waiting(
    engine: Engine,
    slug: str,
    *,
    owner: str,
    timeout: float,
    applier: Applier | None = None,
    ttl: timedelta | None = None,
) -> Outcome:
    """``engine.start_apply(slug, owner=owner)``, waiting up to ``timeout`` seconds for the lease.

    With ``applier``, a lease that expired is taken over (:func:`take_over`)
    and the apply started, in this one call. Raises LeaseHeld once the timeout
    passes with the lease still held, and what ``start_apply`` raises otherwise.
    """
    started = _waiting(
        engine,
        lambda: engine.start_apply(slug, owner=owner, ttl=ttl),
        timeout=timeout,
        applier=applier,
        until_work=False,
    )
    assert started is not None
    return started


def start_next_waiting(
    engine: Engine, *, owner: str, timeout: float, applier: Applier | None = None
) -> Outcome | None:
    """``engine.start_next(owner=owner)``, waiting up to ``timeout`` seconds for work and the lease.

    Waits on the change feed while the queue is empty or the lease is held;
    ``None`` if the queue stayed empty. With ``applier``, an expired lease is
    taken over first (also with an empty queue: the dead apply it settles is
    then queued again). Raises LeaseHeld if the lease is still held at the timeout.
    """
    return next_waiting(engine, owner=owner, timeout=timeout, applier=applier, settled=[])
