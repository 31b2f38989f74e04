"""Faults of a real remote during a fenced move: slow, stalled, rewound, its fence deleted.

Each ends in a clear one-line error or a logged decision, and the remote's
``main`` never holds a merge that the caller was told did not land.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mergegate.apply import GitApplier, RemoteUnreachable
from mergegate.apply.remote import FENCE_REF
from mergegate.statemachine import (
    ApplyResult,
    Blocked,
    Integrated,
    LeaseHeld,
    Reason,
    RepositoryError,
)

from ..gitrepo import git
from ..gitserver import GitServer
from .test_remote_push import _key, _push_branch, _served, _site


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_receiving(served: Path, timeout: float = 30) -> int:
    """The pid of the receive-pack the test hook holds; fails naming what it saw."""
    marker = served / "test-receiving"
    deadline = time.monotonic() + timeout
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline, f"no push reached the hook in {timeout}s: {marker}"
        time.sleep(0.01)
    return int(marker.read_text().split()[0])


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        assert time.monotonic() < deadline, f"receive-pack {pid} still runs after {timeout}s"
        time.sleep(0.01)


def test_remote_push_past_timeout_is_fenced_off(
    git_server: GitServer, tmp_path: Path, heartbeat: Callable[[], None]
) -> None:
    """A push slower than push_timeout: blocked push_rejected, and it can never land later."""
    served, dev, integ = _site(git_server, tmp_path)
    sha = _push_branch(dev, "feat", "f")
    (served / "test-sleep").write_text("4")
    applier = GitApplier(integ, remote="origin", push_timeout=1.5)
    applier.sync()
    before = _served(served, "refs/heads/main")
    result = applier.apply(_key("feat", sha), heartbeat)
    assert isinstance(result, Blocked), result
    assert result.report.reason is Reason.PUSH_REJECTED
    diagnostic = result.report.evidence.diagnostic or ""
    assert "did not finish within push_timeout=1.5s" in diagnostic, diagnostic
    assert "can never land" in diagnostic, diagnostic
    _wait_gone(_wait_receiving(served))
    assert _served(served, "refs/heads/main") == before == applier.main_sha()


def test_remote_stalled_mid_push_is_decided_by_recovery(
    git_server: GitServer, tmp_path: Path, heartbeat: Callable[[], None]
) -> None:
    """The daemon SIGSTOPped while it holds the push: one clear error; recovery decides after."""
    served, dev, integ = _site(git_server, tmp_path)
    sha = _push_branch(dev, "feat", "f")
    (served / "test-sleep").write_text("1")
    applier = GitApplier(integ, remote="origin", push_timeout=1.5)
    applier.sync()
    outcome: list[ApplyResult | BaseException] = []

    def apply() -> None:
        try:
            outcome.append(applier.apply(_key("feat", sha), heartbeat))
        except RepositoryError as err:
            outcome.append(err)

    mover = threading.Thread(target=apply)
    mover.start()
    holder = _wait_receiving(served)
    with git_server.stalled():
        mover.join(timeout=60)
        assert not mover.is_alive(), "the apply did not give up on a stalled server"
    assert len(outcome) == 1
    err = outcome[0]
    assert isinstance(err, RemoteUnreachable), err
    assert "cannot be asked whether it landed" in str(err), err
    assert "\n" not in str(err)
    recoverer = GitApplier(integ, remote="origin", push_timeout=10)
    with recoverer.hold_main() as held:
        decided = held.main_sha
    _wait_gone(holder)
    # Whatever the recovery read is final: the held push cannot land after the fence.
    assert _served(served, "refs/heads/main") == decided


def test_remote_rewound_main_is_one_clear_error(
    git_server: GitServer, tmp_path: Path, heartbeat: Callable[[], None]
) -> None:
    """The server's main reset behind the clone's: sync refuses, naming both and the repair."""
    served, dev, integ = _site(git_server, tmp_path)
    start = _served(served, "refs/heads/main")
    sha = _push_branch(dev, "feat", "f")
    applier = GitApplier(integ, remote="origin")
    applier.sync()
    done = applier.apply(_key("feat", sha), heartbeat)
    assert isinstance(done, Integrated), done
    git(served, "update-ref", "refs/heads/main", start)
    with pytest.raises(RepositoryError, match="does not contain") as caught:
        applier.sync()
    assert f"git push origin {done.main_sha}:refs/heads/main" in str(caught.value)
    assert applier.main_sha() == done.main_sha


def test_remote_fence_deleted_by_hand_is_logged_and_recreated(
    git_server: GitServer,
    tmp_path: Path,
    heartbeat: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fence deleted on the server: recovery creates it again and logs that decision."""
    served, dev, integ = _site(git_server, tmp_path)
    first = _push_branch(dev, "one", "1")
    applier = GitApplier(integ, remote="origin")
    applier.sync()
    assert isinstance(applier.apply(_key("one", first), heartbeat), Integrated)
    old = _served(served, FENCE_REF)
    git(served, "update-ref", "-d", FENCE_REF)
    with (
        caplog.at_level(logging.WARNING, logger="mergegate.transitions.remote"),
        applier.hold_main() as held,
    ):
        assert held.main_sha == _served(served, "refs/heads/main")
    assert any("event=fence_created" in r.getMessage() for r in caplog.records), caplog.text
    new = _served(served, FENCE_REF)
    assert new != old
    second = _push_branch(dev, "two", "2")
    applier.sync()
    assert isinstance(applier.apply(_key("two", second), heartbeat), Integrated)


def _move_fence_by_hand_while_held(served: Path) -> threading.Thread:
    """While the hook holds the push, point the server's fence at a commit of its own."""

    def move() -> None:
        _wait_receiving(served)
        token = git(served, "commit-tree", git(served, "mktree"), "-m", "moved by hand")
        git(served, "update-ref", FENCE_REF, token)
        (served / "test-sleep").unlink()

    mover = threading.Thread(target=move)
    mover.start()
    return mover


def test_remote_fence_moved_by_hand_mid_push_goes_again(
    git_server: GitServer,
    tmp_path: Path,
    heartbeat: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The fence moved by hand while the push is held: the server refuses; the mover goes again."""
    served, dev, integ = _site(git_server, tmp_path)
    sha = _push_branch(dev, "feat", "f")
    (served / "test-sleep").write_text("2")
    applier = GitApplier(integ, remote="origin")
    applier.sync()
    hand = _move_fence_by_hand_while_held(served)
    with caplog.at_level(logging.WARNING, logger="mergegate.transitions.remote"):
        result = applier.apply(_key("feat", sha), heartbeat)
    hand.join(timeout=30)
    assert isinstance(result, Integrated), result
    assert any("event=fence_moved" in r.getMessage() for r in caplog.records), caplog.text
    assert _served(served, "refs/heads/main") == result.main_sha == applier.main_sha()
    message = git(served, "log", "-1", "--format=%B", FENCE_REF)
    assert "mergegate fence: move refs/heads/main" in message, message


def test_remote_fence_moved_by_recovery_elsewhere_loses_the_lease(
    git_server: GitServer, tmp_path: Path
) -> None:
    """The fence moved mid-push and the lease is gone: LeaseHeld propagates, main stays."""
    served, dev, integ = _site(git_server, tmp_path)
    sha = _push_branch(dev, "feat", "f")
    (served / "test-sleep").write_text("2")
    applier = GitApplier(integ, remote="origin")
    applier.sync()
    before = _served(served, "refs/heads/main")
    beats: list[int] = []

    def heartbeat() -> None:
        beats.append(1)
        if (served / "test-receiving").exists():
            # After the refused push: a recovery elsewhere took the lease.
            raise LeaseHeld("main", "elsewhere", None, lost=True)

    hand = _move_fence_by_hand_while_held(served)
    with pytest.raises(LeaseHeld):
        applier.apply(_key("feat", sha), heartbeat)
    hand.join(timeout=30)
    assert _served(served, "refs/heads/main") == before == applier.main_sha()
