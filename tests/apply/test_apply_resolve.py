"""resolve_sha and resolve_candidate_sha on real repositories, SHA-1 and SHA-256."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergegate.apply import (
    BranchNotFound,
    NotACommit,
    NotInBranch,
    UnknownSha,
    resolve_candidate_sha,
    resolve_sha,
)
from mergegate.apply.git import Git
from mergegate.statemachine import CandidateKey, InvalidInput

from ..gitrepo import init_repo
from .conftest import Repo


@pytest.fixture
def feat(repo: Repo) -> tuple[Repo, str, str]:
    """``repo`` with branch feat: commit A, then its tip B."""
    a = repo.commit("refs/heads/feat", repo.main(), {"f": "1\n"})
    b = repo.commit("refs/heads/feat", a, {"f": "2\n"})
    return repo, a, b


def test_abbreviation_resolves_to_the_full_commit_id(feat: tuple[Repo, str, str]) -> None:
    """Every abbreviation from 7 digits up, in either case, gives B's full id."""
    repo, _a, b = feat
    git = Git(repo.path)
    for n in (7, 12, 39, 40):
        assert resolve_sha(git, b[:n]) == b
    assert resolve_sha(git, b[:10].upper()) == b


def test_refs_named_like_the_abbreviation_are_ignored(feat: tuple[Repo, str, str]) -> None:
    """A tag and a branch named like B's prefix (or B's full id) point at A; B is still resolved."""
    repo, a, b = feat
    repo.git("update-ref", f"refs/tags/{b[:7]}", a)
    repo.git("update-ref", f"refs/heads/{b[:8]}", a)
    repo.git("update-ref", f"refs/tags/{b}", a)
    git = Git(repo.path)
    assert repo.git("rev-parse", b[:7]) == a
    assert resolve_sha(git, b[:7]) == b
    assert resolve_sha(git, b[:8]) == b
    assert resolve_sha(git, b) == b


def test_candidate_sha_defaults_to_the_tip_and_checks_containment(
    feat: tuple[Repo, str, str],
) -> None:
    """No sha means the branch tip; an ancestor is accepted; main's child elsewhere is not."""
    repo, a, b = feat
    git = Git(repo.path)
    assert resolve_candidate_sha(git, "feat", None) == b
    assert resolve_candidate_sha(git, "feat", a[:7]) == a
    elsewhere = repo.commit("refs/heads/other", repo.main(), {"o": "o\n"})
    with pytest.raises(NotInBranch) as info:
        resolve_candidate_sha(git, "feat", elsewhere[:7])
    assert (info.value.commit, info.value.branch, info.value.tip) == (elsewhere, "feat", b)
    with pytest.raises(BranchNotFound) as missing:
        resolve_candidate_sha(git, "nosuch", None)
    assert missing.value.branch == "nosuch"


def test_unknown_and_non_commit_ids_are_refused(feat: tuple[Repo, str, str]) -> None:
    """An id no object has, and a tree's id, are refused with their facts."""
    repo, _a, b = feat
    git = Git(repo.path)
    with pytest.raises(UnknownSha) as unknown:
        resolve_sha(git, "0" * 40)
    assert unknown.value.value == "0" * 40
    tree = repo.git("rev-parse", f"{b}^{{tree}}")
    with pytest.raises(NotACommit) as info:
        resolve_sha(git, tree[:9])
    assert (info.value.object_id, info.value.object_type) == (tree, "tree")
    with pytest.raises(InvalidInput, match="4 to 64 hex digits"):
        resolve_sha(git, "--all")


def test_sha256_repository_resolves_to_64_hex_ids(tmp_path: Path) -> None:
    """In a SHA-256 repository the full id is 64 hex digits, and the Engine accepts it."""
    path = init_repo(tmp_path / "r", bare=True, object_format="sha256")
    git = Git(path)
    repo = Repo(path, True)
    tip = repo.commit("refs/heads/feat", None, {"f": "1\n"})
    assert len(tip) == 64
    full = resolve_candidate_sha(git, "feat", tip[:7])
    assert full == tip
    assert CandidateKey("feat", "feat", full).sha == tip
    # In this repository a 40-digit prefix is an abbreviation; the door resolves it.
    assert resolve_sha(git, tip[:40]) == tip
