"""Git.run: output, input larger than a pipe holds, exit statuses and the deadline."""

from __future__ import annotations

import hashlib
import time

import pytest

from mergegate.apply.git import Git, GitCommandFailed
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import RepositoryError


def test_input_larger_than_a_pipe_is_written_while_output_is_read(repo: Repo) -> None:
    """A megabyte on stdin reaches git whole: hash-object names exactly that blob."""
    data = bytes(range(256)) * 4096
    header = f"blob {len(data)}\0".encode()
    expected = hashlib.sha1(header + data, usedforsecurity=False).hexdigest()
    assert Git(repo.path).run("hash-object", "--stdin", stdin=data).text == expected


def test_stdout_and_stderr_and_the_status_come_back_apart(repo: Repo) -> None:
    """A failing command's status and stderr are GitCommandFailed's; ok= accepts a status."""
    git = Git(repo.path)
    with pytest.raises(GitCommandFailed) as err:
        git.run("rev-parse", "--verify", "--end-of-options", "refs/heads/nowhere")
    assert err.value.returncode == 128
    assert "Needed a single revision" in err.value.stderr
    done = git.run("rev-parse", "--verify", "-q", "refs/heads/nowhere", ok=(0, 1))
    assert (done.returncode, done.stdout) == (1, b"")


def test_a_command_past_its_deadline_is_killed_and_named(repo: Repo) -> None:
    """A git that runs past the timeout is killed at it: RepositoryError names the command."""
    git = Git(repo.path)
    start = time.monotonic()
    with pytest.raises(RepositoryError, match=r"`git -c alias.nap=!sleep 30` did not finish in"):
        git.run("-c", "alias.nap=!sleep 30", "nap", timeout=0.5)
    assert time.monotonic() - start < 10
