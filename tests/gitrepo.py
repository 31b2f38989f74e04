"""Real git repositories for the tests, built one way: ``git init`` under a fixed identity.

Every suite that drives git through its porcelain (an ordinary clone that
commits and pushes, as a user's would) builds its repositories here, with the
same author, committer, dates and no user or system configuration, so the
same steps always make the same commits. Suites that build histories from
plans use :class:`mergegate.apply.testing.TestRepo` (git fast-import), which
shares this identity's fixed, increasing timestamps.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["GIT_ENV", "git", "git_env", "init_repo"]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T12:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T12:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git_env() -> dict[str, str]:
    """This process's environment without any GIT_ or MERGEGATE_ variable, plus ``GIT_ENV``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}
    env.update(GIT_ENV)
    env["MERGEGATE_ACTOR"] = "tester"
    return env


def git(where: Path, *args: str) -> str:
    """Run git in ``where`` and return its stdout, stripped; fail the test on error."""
    done = subprocess.run(
        ["git", *args], cwd=where, env=git_env(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


def init_repo(
    path: Path, *, bare: bool = False, branch: str = "main", object_format: str | None = None
) -> Path:
    """A new, empty repository at ``path`` whose unborn HEAD names ``branch``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = [f"--object-format={object_format}"] if object_format else []
    git(path.parent, "init", "-q", *(["--bare"] if bare else []), *fmt, "-b", branch, str(path))
    return path
