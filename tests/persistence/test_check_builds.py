"""The check_builds table on SQLite and PostgreSQL: builds recorded, reopened, and flaky ones."""

from __future__ import annotations

import attrs
import pytest

from mergegate.persistence.checkbuilds import CheckBuilds
from mergegate.statemachine import CandidateKey, InvalidInput, Store

CANDIDATE = "c" * 40
BASE = "b" * 40
MERGE = "e0" * 20


@attrs.frozen
class Job:
    """What add_build reads of a CheckJob."""

    key: CandidateKey
    base: str
    candidate: str
    commit: str


def _job(merge: str = MERGE) -> Job:
    return Job(CandidateKey("feat", "feat", CANDIDATE), BASE, CANDIDATE, merge)


def test_a_triggered_build_is_open_until_it_finishes(store: Store) -> None:
    """A build is found by its merge until it ends; then it is no longer open."""
    log = CheckBuilds(store)
    row = log.add_build(_job(), "linux", 1, "buildbot", "17", "http://ci/#/buildrequests/17")
    (found,) = log.open_builds("feat", CANDIDATE, BASE)
    assert (found.id, found.merge_sha, found.check, found.build_id, found.state) == (
        row,
        MERGE,
        "linux",
        "17",
        "queued",
    )
    assert log.open_builds("feat", CANDIDATE, "a" * 40) == []
    log.finish_build(row, "passed", 0)
    assert log.open_builds("feat", CANDIDATE, BASE) == []
    (done,) = log.builds("feat")
    assert (done.state, done.exit_code, done.finished_at is not None) == ("passed", 0, True)


def test_failed_then_passed_is_flaky_and_counted(store: Store) -> None:
    """A failure then a pass on one merge commit is one flaky check; a plain failure is not."""
    log = CheckBuilds(store)
    for attempt, state, code in ((1, "failed", 2), (2, "passed", 0)):
        row = log.add_build(_job(), "linux", attempt, "buildbot", str(attempt), None)
        log.finish_build(row, state, code)
    other = log.add_build(_job("e1" * 20), "docs", 1, "buildbot", "9", None)
    log.finish_build(other, "failed", 2)
    (flaky,) = log.flaky("feat")
    assert (flaky.check, flaky.merge_sha) == ("linux", MERGE)
    assert [(r.attempt, r.state) for r in flaky.attempts] == [(1, "failed"), (2, "passed")]
    assert log.flaky_counts() == {"linux": 1}


def test_a_hostile_sha_writes_nothing(store: Store) -> None:
    """A merge sha that is not a sha is refused before anything is written."""
    log = CheckBuilds(store)
    with pytest.raises(InvalidInput):
        log.add_build(_job("not-a-sha; DROP TABLE check_builds"), "linux", 1, "buildbot", "1", None)
    assert log.builds() == []
