"""A checked-out main: a clean work tree moves with main, a dirty one refuses the move."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mergegate.apply import CheckoutInUse, GitApplier, RepositoryBusy
from mergegate.apply.checkout import checkout_problem
from mergegate.apply.git import Git
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import Blocked, CandidateKey, Integrated

from .conftest import MakeRepo


def _noop() -> None:
    return None


def _checked_out(make_repo: MakeRepo) -> tuple[Repo, str, CandidateKey]:
    """A non-bare repository on main (files a, b) and a branch feat changing b and adding c."""
    repo = make_repo(bare=False)
    base = repo.commit("refs/heads/main", None, {"a": "a\n", "b": "b\n"})
    repo.git("checkout", "-q", "main")
    feat = repo.commit("refs/heads/feat", base, {"b": "feat\n", "c": "c\n"})
    return repo, base, CandidateKey("feat", "feat", feat)


def _status(where: Path) -> str:
    return Git(where).run("status", "--porcelain", "--untracked-files=all").text


def test_clean_checkout_moves_with_main(make_repo: MakeRepo) -> None:
    """main advances and the checked-out work tree and index show the merge, with no changes."""
    repo, base, key = _checked_out(make_repo)
    result = GitApplier(repo.path).apply(key, _noop)
    assert isinstance(result, Integrated)
    assert repo.main() == result.main_sha != base
    assert (repo.path / "b").read_text() == "feat\n"
    assert (repo.path / "c").read_text() == "c\n"
    assert _status(repo.path) == ""
    assert repo.git("rev-parse", "HEAD") == result.main_sha


def test_clean_linked_worktree_moves_with_main(repo: Repo, tmp_path: Path) -> None:
    """main checked out in a linked worktree of a bare repository is updated the same way."""
    wt = tmp_path / "wt"
    repo.git("worktree", "add", "-q", str(wt), "main")
    feat = repo.commit("refs/heads/feat", repo.main(), {"d": "d\n"})
    result = GitApplier(repo.path).apply(CandidateKey("feat", "feat", feat), _noop)
    assert isinstance(result, Integrated)
    assert (wt / "d").read_text() == "d\n"
    assert _status(wt) == ""


def test_untracked_files_are_kept(make_repo: MakeRepo) -> None:
    """An untracked file the merge does not touch does not count as dirty and survives."""
    repo, _base, key = _checked_out(make_repo)
    (repo.path / "notes.txt").write_text("mine\n")
    result = GitApplier(repo.path).apply(key, _noop)
    assert isinstance(result, Integrated)
    assert (repo.path / "notes.txt").read_text() == "mine\n"


def test_dirty_after_construction_raises_and_leaves_main(make_repo: MakeRepo) -> None:
    """A file edited after the applier was made: the move raises CheckoutInUse, main stays."""
    repo, base, key = _checked_out(make_repo)
    applier = GitApplier(repo.path)
    (repo.path / "a").write_text("edited\n")
    # A person's work in progress is the host's moment, not the candidate's fault: no block.
    with pytest.raises(CheckoutInUse, match="its files differ from its index") as info:
        applier.apply(key, _noop)
    assert info.value.problem == "its files differ from its index"
    assert info.value.worktree == str(repo.path)
    assert repo.main() == base
    assert (repo.path / "a").read_text() == "edited\n"
    assert (repo.path / "b").read_text() == "b\n"
    assert not (repo.path / ".git" / "refs" / "heads" / "main.lock").exists()


def test_untracked_file_in_the_way_blocks_and_leaves_both(make_repo: MakeRepo) -> None:
    """An untracked file the merge would overwrite: read-tree refuses first, nothing moves."""
    repo, base, key = _checked_out(make_repo)
    (repo.path / "c").write_text("mine\n")
    result = GitApplier(repo.path).apply(key, _noop)
    assert isinstance(result, Blocked)
    assert "read-tree refused" in (result.report.evidence.diagnostic or "")
    assert repo.main() == base
    assert (repo.path / "c").read_text() == "mine\n"
    assert (repo.path / "b").read_text() == "b\n"
    assert repo.git("rev-parse", "HEAD") == base


@pytest.mark.parametrize("touched", [False, True])
def test_git_agrees_the_result_is_clean(make_repo: MakeRepo, touched: bool) -> None:
    """After the move `git diff --quiet HEAD` agrees: index and files match the new main."""
    repo, _base, key = _checked_out(make_repo)
    if touched:
        # Touch a file without changing it: the refresh must not count it as a change.
        (repo.path / "a").write_text("a\n")
    GitApplier(repo.path).apply(key, _noop)
    done = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=repo.path, check=False)
    assert done.returncode == 0


@pytest.mark.parametrize("edit", ["none", "touched", "changed", "staged"])
def test_asking_whether_main_can_move_takes_no_lock_and_writes_nothing(
    make_repo: MakeRepo, edit: str
) -> None:
    """checkout_problem reads the work tree without index.lock: a person's git never collides."""
    repo, _base, _key = _checked_out(make_repo)
    if edit == "touched":
        (repo.path / "a").write_text("a\n")  # rewritten, unchanged
    elif edit in ("changed", "staged"):
        (repo.path / "a").write_text("a person's edit\n")
    if edit == "staged":
        repo.git("add", "a")
    index = repo.path / ".git" / "index"
    before = index.stat().st_mtime_ns, index.read_bytes()
    problem = checkout_problem(Git(repo.path))
    assert (index.stat().st_mtime_ns, index.read_bytes()) == before, "the index was written"
    assert not (repo.path / ".git" / "index.lock").exists()
    expected = {
        "none": None,
        "touched": None,
        "changed": "its files differ from its index",
        "staged": "its index differs from HEAD",
    }[edit]
    assert problem == expected


def test_a_held_index_lock_is_reported_busy_and_left_alone(make_repo: MakeRepo) -> None:
    """A person's index.lock: RepositoryBusy naming it, and the lock is still theirs."""
    repo, _base, _key = _checked_out(make_repo)
    lock = repo.path / ".git" / "index.lock"
    lock.write_text("")
    with pytest.raises(RepositoryBusy, match=r"index\.lock"):
        checkout_problem(Git(repo.path))
    assert lock.exists()
