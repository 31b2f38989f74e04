"""A recovery that records the integration between the mover's commit and its own record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from mergegate.apply import GitApplier
from mergegate.apply.testing import TestRepo as Repo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    ApplyResult,
    CandidateKey,
    ConcurrencyConflict,
    Engine,
    Event,
    Integrated,
    State,
)


@attrs.define
class Clock:
    """A clock the test moves forward by hand."""

    now: datetime = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@attrs.define
class RecoveredMidway:
    """The real applier; after it moved main, the lease runs out and a recoverer settles it."""

    inner: GitApplier
    recoverer: Engine
    clock: Clock
    main_for_recovery: Callable[[str], str] = lambda main: main

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        result = self.inner.apply(key, heartbeat)
        self.clock.now += timedelta(hours=1)
        with self.inner.hold_main() as held:
            self.recoverer.recover(
                self.main_for_recovery(held.main_sha),
                contains=lambda sha: self.inner.contains(sha, held.main_sha),
            )
        return result


def _setup(tmp_path: Path, repo: Repo) -> tuple[Engine, Engine, Clock, GitApplier, str]:
    clock = Clock()
    store = SQLiteStore(tmp_path / "db.sqlite3")
    mover = Engine(store, clock=clock, lease_ttl=timedelta(seconds=5))
    recoverer = Engine(store, clock=clock, actor="recoverer")
    sha = repo.commit("refs/heads/feature", repo.main(), {"a": "feature\n"})
    mover.submit(CandidateKey("feature", "feature", sha))
    return mover, recoverer, clock, GitApplier(repo.path), sha


def test_apply_succeeds_when_recovery_integrated_at_the_same_sha(
    tmp_path: Path, repo: Repo
) -> None:
    """The mover's record loses to recovery's at the same main sha: success, integrated once."""
    mover, recoverer, clock, inner, _sha = _setup(tmp_path, repo)
    outcome = mover.apply_next(RecoveredMidway(inner, recoverer, clock), owner="mover")
    assert outcome is not None
    assert outcome.state is State.INTEGRATED
    history = mover.store.history(outcome.candidate.id)
    assert [t.event for t in history] == [Event.SUBMIT, Event.START_APPLY, Event.INTEGRATE]
    assert history[-1].actor == "recoverer"
    assert history[-1].reason == f"main={repo.main()}"
    assert outcome.transition == history[-1]
    assert mover.verify() == []


def test_apply_still_conflicts_when_recovery_recorded_another_sha(
    tmp_path: Path, repo: Repo
) -> None:
    """Integrated at another main sha is not "the same move": the conflict is raised as before."""
    mover, recoverer, clock, inner, _sha = _setup(tmp_path, repo)
    other = repo.commit("refs/heads/elsewhere", repo.main(), {"b": "elsewhere\n"})
    applier = RecoveredMidway(inner, recoverer, clock, main_for_recovery=lambda _main: other)
    with pytest.raises(ConcurrencyConflict):
        mover.apply_next(applier, owner="mover")
    assert mover.get("feature").state is State.INTEGRATED


def test_the_applier_result_is_integrated_in_the_race(tmp_path: Path, repo: Repo) -> None:
    """The race really happens after the move: the applier reports Integrated, main moved."""
    mover, recoverer, clock, inner, sha = _setup(tmp_path, repo)
    before = repo.main()
    seen: list[ApplyResult] = []

    @attrs.define
    class Spy(RecoveredMidway):
        def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
            result = super().apply(key, heartbeat)
            seen.append(result)
            return result

    mover.apply_next(Spy(inner, recoverer, clock), owner="mover")
    assert isinstance(seen[0], Integrated)
    assert repo.main() != before
    assert inner.contains(sha)


def test_renew_after_reads_a_fresh_lease_and_renews_an_old_one(tmp_path: Path, repo: Repo) -> None:
    """With renew_after, a fresh lease is only read; once that old, the heartbeat renews it."""
    mover, _recoverer, clock, inner, _sha = _setup(tmp_path, repo)
    mover.renew_after = timedelta(seconds=2)
    expiries = []

    @attrs.define
    class Ticking:
        def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
            for _ in range(3):
                heartbeat()
                [lease] = mover.store.leases()
                expiries.append(lease.expires_at)
                clock.now += timedelta(seconds=1)
            return inner.apply(key, heartbeat)

    outcome = mover.apply_next(Ticking(), owner="mover")
    assert outcome is not None
    assert outcome.state is State.INTEGRATED
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # Read at +0 s and +1 s (the lease from +0 s stands); renewed at +2 s.
    assert expiries == [start + timedelta(seconds=5)] * 2 + [start + timedelta(seconds=7)]
