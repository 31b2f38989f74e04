"""The commit writer: the very object ``commit-tree`` writes, through one running git."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mergegate.apply import GitApplier
from mergegate.apply.commitwriter import CommitWriter
from mergegate.apply.git import Git, Identity
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import CandidateKey, Integrated

_MESSAGE = "mergegate: integrate feature (feature@0123456)\n\nCandidate: 0123\n"


@pytest.fixture
def zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process's time zone set to the parameter's, and put back afterwards."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def _commit_tree_at(repo: Repo, sha: str, identity: Identity, tree: str, parents: list[str]) -> str:
    """What ``git commit-tree`` writes for the same tree, parents and message at ``sha``'s time."""
    header = repo.git("cat-file", "commit", sha).split("\n\n", 1)[0]
    when = re.search(r"^committer .* (\d+ [+-]\d{4})$", header, re.M)
    assert when is not None, header
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": identity.name,
        "GIT_AUTHOR_EMAIL": identity.email,
        "GIT_COMMITTER_NAME": identity.name,
        "GIT_COMMITTER_EMAIL": identity.email,
        "GIT_AUTHOR_DATE": when[1],
        "GIT_COMMITTER_DATE": when[1],
    }
    argv = ["git", "-C", str(repo.path), "commit-tree", *(a for p in parents for a in ("-p", p))]
    done = subprocess.run(
        [*argv, "-F", "-", tree], input=_MESSAGE.encode(), env=env, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"], indirect=True)
@pytest.mark.parametrize("name", ["mergegate", "Merge Bot."])
def test_writes_the_object_commit_tree_writes(repo: Repo, zone: str, name: str) -> None:
    """Same tree, parents, identity (git's clean-up of a name included) and moment: same id."""
    identity = Identity(name=name)
    side = repo.commit("refs/heads/side", repo.main(), {"s": "s\n"})
    parents = [repo.main(), side]
    tree = repo.git("rev-parse", f"{side}^{{tree}}")
    writer = CommitWriter(Git(repo.path, identity))
    try:
        sha = writer.write(tree, (parents[0], parents[1]), _MESSAGE)
    finally:
        writer.close()
    assert repo.git("cat-file", "-t", sha) == "commit"
    assert _commit_tree_at(repo, sha, identity, tree, parents) == sha
    offset = {"UTC": "+0000", "Asia/Kolkata": "+0530", "America/St_Johns": "-0330"}[zone]
    if zone != "America/St_Johns" or time.localtime().tm_isdst == 0:
        assert repo.git("cat-file", "commit", sha).split("\n")[3].endswith(offset)


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "utf-8-"])
def test_a_legacy_commit_encoding_is_left_to_commit_tree(repo: Repo, encoding: str) -> None:
    """An ``i18n.commitEncoding`` git does not call UTF-8 leaves the commit to ``commit-tree``."""
    repo.git("config", "i18n.commitEncoding", encoding)
    writer = CommitWriter(Git(repo.path))
    try:
        tree = repo.git("rev-parse", "refs/heads/main^{tree}")
        sha = writer.write(tree, (repo.main(),), _MESSAGE)
    finally:
        writer.close()
    assert f"\nencoding {encoding}\n" in repo.git("cat-file", "commit", sha)
    assert writer._running.proc is None  # no hash-object was started


def test_an_applier_writes_merges_without_a_process_each(repo: Repo) -> None:
    """Three merges through one applier: one hash-object process wrote them, then it stops."""
    applier = GitApplier(repo.path)
    first = None
    try:
        for n in range(3):
            head = repo.commit(f"refs/heads/f{n}", repo.main(), {f"f{n}": "x\n"})
            result = applier.apply(CandidateKey(f"f{n}", f"f{n}", head), lambda: None)
            assert isinstance(result, Integrated), result
            assert repo.parents(repo.main())[1] == head
            proc = applier._commits._running.proc
            assert proc is not None
            assert proc.poll() is None
            first = first or proc
            assert proc is first
    finally:
        applier.close()
    assert first is not None
    assert first.wait(timeout=5) == 0
    assert applier._commits._scratch is None


def test_a_removed_scratch_file_is_made_again(repo: Repo, tmp_path: Path) -> None:
    """A /tmp cleaner removes the scratch file between two commits: the second is written."""
    writer = CommitWriter(Git(repo.path))
    tree = repo.git("rev-parse", "refs/heads/main^{tree}")
    try:
        first = writer.write(tree, (repo.main(),), _MESSAGE)
        assert writer._scratch is not None
        os.unlink(writer._scratch[0])
        second = writer.write(tree, (first,), _MESSAGE)
        assert repo.parents(second) == [first]
        assert writer._scratch is not None
        assert os.path.exists(writer._scratch[0])
    finally:
        writer.close()


def test_a_tmpdir_git_cannot_be_told_leaves_the_commit_to_commit_tree(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A newline in ``$TMPDIR`` cannot go on hash-object's stdin: commit-tree writes, twice."""
    odd = tmp_path / "tmp\nodd"
    odd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(odd))
    writer = CommitWriter(Git(repo.path))
    tree = repo.git("rev-parse", "refs/heads/main^{tree}")
    try:
        first = writer.write(tree, (repo.main(),), _MESSAGE)
        second = writer.write(tree, (first,), _MESSAGE)
        assert repo.parents(second) == [first]
        assert writer._running.proc is None  # no hash-object was started
        assert len(list(odd.iterdir())) == 1  # one scratch file, not one per commit
    finally:
        writer.close()
    assert list(odd.iterdir()) == []
