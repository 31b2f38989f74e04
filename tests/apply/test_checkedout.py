"""Where main is checked out: git is asked again exactly when its files say the answer changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergegate.apply import checkedout
from mergegate.apply.checkedout import CheckoutFinder
from mergegate.apply.git import Git
from mergegate.apply.testing import TestRepo as Repo
from mergegate.apply.worktree import scratch_root

from .conftest import MakeRepo


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times git's worktree list was run (one entry per run)."""
    runs: list[int] = []
    real = checkedout.list_worktrees

    def counting(git):  # type: ignore[no-untyped-def]
        runs.append(1)
        return real(git)

    monkeypatch.setattr(checkedout, "list_worktrees", counting)
    return runs


def _finder(repo: Repo) -> CheckoutFinder:
    common = Path(repo.git("rev-parse", "--path-format=absolute", "--git-common-dir")).resolve()
    return CheckoutFinder(Git(repo.path), common, scratch_root(common), "refs/heads/main")


def test_an_unchanged_repository_is_not_asked_again(repo: Repo, asked: list[int]) -> None:
    """Three lookups with nothing changed in between run git's worktree list once."""
    finder = _finder(repo)
    assert [finder.find(), finder.find(), finder.find()] == [None, None, None]
    assert len(asked) == 1


def test_a_linked_worktree_switching_to_main_is_seen_at_once(
    repo: Repo, tmp_path: Path, asked: list[int]
) -> None:
    """A person's worktree on another branch, then on main, then off it again: each is seen."""
    repo.commit("refs/heads/other", repo.main(), {"o": "o\n"})
    finder = _finder(repo)
    wt = tmp_path / "person"
    repo.git("worktree", "add", "-q", str(wt), "other")
    assert finder.find() is None
    Git(wt).run("switch", "-q", "main")
    assert finder.find() == wt
    assert finder.find() == wt
    Git(wt).run("switch", "-q", "other")
    assert finder.find() is None
    assert len(asked) == 3  # the second look at main was remembered


def test_a_clone_checking_main_out_is_seen(make_repo: MakeRepo, asked: list[int]) -> None:
    """A non-bare repository's own work tree, switched between branches, is followed."""
    repo = make_repo(bare=False)
    base = repo.commit("refs/heads/main", None, {"a": "a\n"})
    repo.commit("refs/heads/side", base, {"b": "b\n"})
    repo.git("checkout", "-q", "side")
    finder = _finder(repo)
    assert finder.find() is None
    repo.git("checkout", "-q", "main")
    assert finder.find() == repo.path
    repo.git("checkout", "-q", "--detach", "main")
    assert finder.find() is None


def test_scratch_worktrees_neither_count_nor_make_git_asked(repo: Repo, asked: list[int]) -> None:
    """A mergegate scratch worktree on main is not a checkout, and its HEAD's moves cost nothing."""
    common = Path(repo.git("rev-parse", "--path-format=absolute", "--git-common-dir")).resolve()
    scratch = scratch_root(common) / "1-test"
    scratch.parent.mkdir(parents=True, exist_ok=True)
    finder = _finder(repo)
    assert finder.find() is None
    repo.git("worktree", "add", "-q", "--detach", str(scratch), "main")
    assert finder.find() is None
    Git(scratch).run("switch", "-q", "main")
    assert finder.find() is None
    Git(scratch).run("switch", "-q", "--detach", "main")
    assert finder.find() is None
    assert len(asked) == 1
