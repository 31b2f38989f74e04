"""The fenced push against a real git daemon: outside pushes, refusals, a stalled server, recovery.

Each test makes an integration clone of a repository served by
``tests/gitserver.py`` (``git daemon --enable=receive-pack`` on 127.0.0.1),
so the server's receive-pack is a process of its own, as on a forge.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mergegate.apply import GitApplier, RemoteUnreachable
from mergegate.apply.remote import FENCE_REF
from mergegate.statemachine import Blocked, CandidateKey, Integrated, Reason

from ..gitrepo import git, init_repo
from ..gitserver import GitServer


def _site(server: GitServer, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A server repository with main, a developer's clone and a bare integration clone."""
    seed = init_repo(tmp_path / "seed")
    (seed / "a").write_text("a\n")
    git(seed, "add", "a")
    git(seed, "commit", "-qm", "a")
    served = server.repo(seed)
    dev = tmp_path / "dev"
    git(tmp_path, "clone", "-q", server.url(served), str(dev))
    integ = tmp_path / "integ.git"
    git(tmp_path, "clone", "-q", "--bare", server.url(served), str(integ))
    return served, dev, integ


def _push_branch(dev: Path, branch: str, name: str) -> str:
    """Commit file ``name`` on ``branch`` (from origin/main) and push it; return its sha."""
    git(dev, "checkout", "-q", "-B", branch, "origin/main")
    (dev / name).write_text(f"{name}\n")
    git(dev, "add", name)
    git(dev, "commit", "-qm", name)
    git(dev, "push", "-q", "-f", "origin", f"{branch}:refs/heads/{branch}")
    return git(dev, "rev-parse", "HEAD")


def _key(branch: str, sha: str) -> CandidateKey:
    return CandidateKey(branch, branch, sha)


def _served(served: Path, ref: str) -> str:
    return git(served, "rev-parse", "--verify", "-q", ref)


def test_remote_push_moves_main_and_fence(
    git_server: GitServer, tmp_path: Path, heartbeat: Callable[[], None]
) -> None:
    """An apply pushes main and the fence in one atomic push; local main follows."""
    served, dev, integ = _site(git_server, tmp_path)
    sha = _push_branch(dev, "feat", "f")
    applier = GitApplier(integ, remote="origin")
    applier.sync()
    result = applier.apply(_key("feat", sha), heartbeat)
    assert isinstance(result, Integrated), result
    assert _served(served, "refs/heads/main") == result.main_sha == applier.main_sha()
    fence = _served(served, FENCE_REF)
    assert "mergegate fence: move refs/heads/main" in git(served, "log", "-1", "--format=%B", fence)


def test_remote_outside_push_is_a_moved_main(
    git_server: GitServer, tmp_path: Path, heartbeat: Callable[[], None]
) -> None:
    """A hotfix pushed straight to the server's main: the candidate is rebuilt on it, no block."""
    served, dev, integ = _site(git_server, tmp_path)
    sha = _push_branch(dev, "feat", "f")
    applier = GitApplier(integ, remote="origin")
    applier.sync()
    hotfix = _push_branch(dev, "hotfix", "h")
    git(dev, "push", "-q", "origin", "hotfix:main")
    result = applier.apply(_key("feat", sha), heartbeat)
    assert isinstance(result, Integrated), result
    main = _served(served, "refs/heads/main")
    assert main == result.main_sha
    assert git(served, "rev-parse", f"{main}^1") == hotfix
    assert len(result.attempts) == 2


def test_remote_refusal_names_the_server_message(
    git_server: GitServer, tmp_path: Path, heartbeat: Callable[[], None]
) -> None:
    """A pre-receive hook's refusal is push_rejected quoting the server's own words."""
    served, dev, integ = _site(git_server, tmp_path)
    sha = _push_branch(dev, "feat", "f")
    (served / "test-reject").write_text("main is frozen for the release\n")
    applier = GitApplier(integ, remote="origin")
    applier.sync()
    before = _served(served, "refs/heads/main")
    result = applier.apply(_key("feat", sha), heartbeat)
    assert isinstance(result, Blocked), result
    assert result.report.reason is Reason.PUSH_REJECTED
    diagnostic = result.report.evidence.diagnostic or ""
    assert "main is frozen for the release" in diagnostic, diagnostic
    assert "pre-receive hook declined" in diagnostic, diagnostic
    assert _served(served, "refs/heads/main") == before == applier.main_sha()


def test_remote_recovery_fence_refuses_a_late_push(git_server: GitServer, tmp_path: Path) -> None:
    """A push sitting in pre-receive when recovery advances the fence is refused by the server."""
    served, dev, integ = _site(git_server, tmp_path)
    sha = _push_branch(dev, "feat", "f")
    applier = GitApplier(integ, remote="origin")
    applier.sync()
    built = applier.build(_key("feat", sha))
    assert not isinstance(built, Blocked)
    before = _served(served, "refs/heads/main")
    fence = git(integ, "ls-remote", "origin", FENCE_REF).split("\t")[0] or ""
    token = git(integ, "commit-tree", git(integ, "mktree"), "-m", "late")
    (served / "test-sleep").write_text("2")
    late = subprocess.Popen(
        [
            "git",
            "push",
            "--atomic",
            "--porcelain",
            f"--force-with-lease=refs/heads/main:{before}",
            f"--force-with-lease={FENCE_REF}:{fence}",
            "origin",
            f"{built.commit}:refs/heads/main",
            f"{token}:{FENCE_REF}",
        ],
        cwd=integ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    with applier.hold_main() as held:
        assert held.main_sha == before
    out, err = late.communicate(timeout=30)
    assert late.returncode != 0, (out, err)
    assert "cannot lock ref" in err, err
    assert _served(served, "refs/heads/main") == before


def test_remote_down_is_one_clear_error(git_server: GitServer, tmp_path: Path) -> None:
    """With the server down, sync raises RemoteUnreachable naming the remote; nothing moves."""
    _served_repo, _dev, integ = _site(git_server, tmp_path)
    applier = GitApplier(integ, remote="origin", push_timeout=2)
    before = applier.main_sha()
    with git_server.down(), pytest.raises(RemoteUnreachable, match="remote origin: cannot fetch"):
        applier.sync()
    assert applier.main_sha() == before


def test_remote_stalled_server_times_out(git_server: GitServer, tmp_path: Path) -> None:
    """A SIGSTOPped daemon: sync gives up after push_timeout with one clear error."""
    _served_repo, _dev, integ = _site(git_server, tmp_path)
    applier = GitApplier(integ, remote="origin", push_timeout=1)
    began = time.monotonic()
    with git_server.stalled(), pytest.raises(RemoteUnreachable, match="did not finish in 1s"):
        applier.sync()
    assert time.monotonic() - began < 10
