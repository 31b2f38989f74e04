"""The update-ref kept between moves: one git for many moves, nothing held between them."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from mergegate.apply import GitApplier
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import CandidateKey, Integrated


def _integrate(applier: GitApplier, repo: Repo, name: str) -> str:
    head = repo.commit(f"refs/heads/{name}", repo.main(), {name: "x\n"})
    result = applier.apply(CandidateKey(name, name, head), lambda: None)
    assert isinstance(result, Integrated), result
    return result.main_sha


@pytest.fixture
def applier(repo: Repo) -> Iterator[GitApplier]:
    """An applier that has integrated one candidate, so it keeps an update-ref."""
    applier = GitApplier(repo.path)
    try:
        _integrate(applier, repo, "f0")
        yield applier
    finally:
        applier.close()


def test_moves_share_one_git_and_hold_nothing_between_them(repo: Repo, applier: GitApplier) -> None:
    """Three moves, one update-ref; between moves no lock exists and anyone may move main."""
    refs = applier._main.refs
    kept = refs._slot[0]
    assert kept is not None
    assert kept.poll() is None
    try:
        for n in (1, 2):
            assert not (repo.path / "refs/heads/main.lock").exists()
            # An outside git moves main between two moves: the kept git holds no lock.
            outside = repo.commit("refs/heads/main", repo.main(), {f"o{n}": "o\n"})
            assert repo.main() == outside
            moved = _integrate(applier, repo, f"f{n}")
            assert repo.parents(moved)[0] == outside
            assert refs._slot[0] is kept
    finally:
        applier.close()
    assert kept.wait(timeout=5) == 0
    assert refs._slot[0] is None


def test_a_kept_git_killed_while_idle_is_replaced_and_the_move_lands(
    repo: Repo, applier: GitApplier
) -> None:
    """SIGKILL the idle update-ref: the next move starts a new one and integrates."""
    refs = applier._main.refs
    kept = refs._slot[0]
    assert kept is not None
    os.kill(kept.pid, signal.SIGKILL)
    kept.wait(timeout=5)
    moved = _integrate(applier, repo, "f1")
    assert repo.main() == moved
    assert refs._slot[0] is not None
    assert refs._slot[0] is not kept
    assert not list((repo.path / "mergegate" / "movers").glob("*.json"))
