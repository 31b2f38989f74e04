"""Hostile names: rejected when the identity is built, or passed to git as data only."""

from __future__ import annotations

import json
import shutil
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mergegate.apply import GitApplier
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import CandidateKey, Integrated, InvalidInput
from mergegate.statemachine._validation import check_branch
from mergegate.statemachine.testing.strategies import hostile_branches, hostile_slugs

from ..examples import fraction

MakeRepo = Callable[..., Repo]
SHA = "0123456789abcdef0123456789abcdef01234567"


@given(hostile_slugs())
def test_hostile_slugs_are_rejected(slug: str) -> None:
    """No hostile slug can become part of a candidate identity."""
    with pytest.raises(InvalidInput, match="slug"):
        CandidateKey(slug, "ok", SHA)


@given(hostile_branches())
def test_hostile_branches_are_rejected(branch: str) -> None:
    """Branches that git could read as an option or a path trick are rejected."""
    with pytest.raises(InvalidInput, match="branch"):
        CandidateKey("ok", branch, SHA)


def recording_git(directory: Path) -> tuple[Path, Path]:
    """A real git, behind a wrapper that appends each argv (as JSON) to a log."""
    log = directory / "argv.jsonl"
    wrapper = directory / "git-recording"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({shutil.which('git')!r}, ['git', *sys.argv[1:]])\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


# Valid for git and for mergegate, yet full of shell and option syntax.
odd_branches = st.text("abc-=;|&$()'\"<>`!#%+,@{}/", min_size=1, max_size=20).filter(
    lambda b: _valid(b) and not b.startswith("-")
)


def _valid(branch: str) -> bool:
    try:
        check_branch(branch)
    except InvalidInput:
        return False
    return True


@fraction(4)  # each example builds a repository and applies
@given(branch=odd_branches | st.sampled_from(["x/--upload-pack=x", "a;rm", "$(touch${IFS}pwned)"]))
def test_odd_branch_never_reaches_argv(
    make_repo: MakeRepo, tmp_path_factory: pytest.TempPathFactory, branch: str
) -> None:
    """A valid but odd branch name travels through stdin only; no git argv contains it."""
    repo = make_repo()
    base = repo.commit("refs/heads/main", None, {"a": "a\n"})
    repo.git("update-ref", "--end-of-options", f"refs/heads/{branch}", base)
    sha = repo.commit(f"refs/heads/{branch}", base, {"b": "b\n"})
    wrapper, log = recording_git(tmp_path_factory.mktemp("wrap"))
    applier = GitApplier(repo.path, git_executable=str(wrapper))
    result = applier.apply(CandidateKey("odd", branch, sha), lambda: None)
    assert isinstance(result, Integrated)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls
    assert not [a for argv in calls for a in argv if a == branch or f"heads/{branch}" in a]
    subject = repo.git("show", "-s", "--format=%s", result.main_sha)
    assert subject == f"mergegate: integrate odd ({branch}@{sha[:7]})"
    assert not (repo.path / "pwned").exists()


def test_odd_main_branch_only_appears_as_a_full_ref(make_repo: MakeRepo, tmp_path: Path) -> None:
    """A main branch like ``x/--upload-pack=x`` reaches git only inside ``refs/heads/``."""
    main = "x/--upload-pack=x"
    repo = make_repo()
    base = repo.commit(f"refs/heads/{main}", None, {"a": "a\n"})
    sha = repo.commit("refs/heads/feat", base, {"b": "b\n"})
    remote = tmp_path / "remote.git"
    repo.git("clone", "-q", "--bare", "--end-of-options", str(repo.path), str(remote))
    repo.git("remote", "add", "origin", str(remote))
    wrapper, log = recording_git(tmp_path)
    applier = GitApplier(repo.path, main_branch=main, remote="origin", git_executable=str(wrapper))
    result = applier.apply(CandidateKey("feat", "feat", sha), lambda: None)
    assert isinstance(result, Integrated)
    seen = [arg for line in log.read_text().splitlines() for arg in json.loads(line) if main in arg]
    assert seen
    for arg in seen:
        assert main not in arg.replace(f"refs/heads/{main}", ""), arg
        assert not arg.startswith("-") or arg.startswith("--force-with-lease=refs/heads/"), arg
