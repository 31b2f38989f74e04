"""Containment: nothing under todos/ is read or written through a symlink, nothing outside
the boundary is written, and only a follow-up mergegate created can resolve a block."""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from mergegate.followups import (
    FollowUpConflict,
    FollowUps,
    PathOutsideRepository,
    StateFileResolver,
    UnsafeFile,
    roadmap_slugs,
)
from mergegate.followups.contain import check_inside
from mergegate.followups.roadmap import add_roadmap_entry
from mergegate.followups.scaffold import scaffold_todo
from mergegate.statemachine import BlockedRecord, BlockedReport, FollowUpState

from ..procio import LiveOutput, wait_until

MakeRecord = Callable[..., BlockedRecord]
ROADMAP = "- slug: kept\n  description: a human's entry\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """An empty folder outside the repository."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty repository folder."""
    path = tmp_path / "repo"
    path.mkdir()
    return path


def test_check_inside_resolves_symlinks(repo: Path, outside: Path) -> None:
    """A path inside is returned resolved; one that a symlink leads outside is refused."""
    (repo / "docs").mkdir()
    (repo / "inner").symlink_to(repo / "docs")
    assert check_inside(repo, repo / "inner" / "todos", "todos") == repo / "docs" / "todos"
    (repo / "todos").symlink_to(outside)
    with pytest.raises(PathOutsideRepository, match="outside the repository") as caught:
        check_inside(repo, repo / "todos", "todos")
    assert caught.value.resolved == str(outside)


def test_materialize_refuses_a_todos_symlink_planted_outside(
    repo: Path, outside: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """A todos symlink made after FollowUps was built is refused; nothing is written outside."""
    followups = FollowUps(repo / "todos", boundary=repo)
    (repo / "todos").symlink_to(outside)
    with pytest.raises(PathOutsideRepository):
        followups.materialize(make_record(), checks_report)
    assert list(outside.iterdir()) == []


def test_materialize_refuses_a_roadmap_parent_outside(
    repo: Path, outside: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """A roadmap whose folder leads outside is refused before the todo folder is written."""
    (repo / "plans").symlink_to(outside)
    followups = FollowUps(repo / "todos", roadmap=repo / "plans" / "roadmap.yaml", boundary=repo)
    with pytest.raises(PathOutsideRepository, match="roadmap"):
        followups.materialize(make_record(), checks_report)
    assert list(outside.iterdir()) == []
    assert not (repo / "todos").exists()


def test_roadmap_symlink_is_refused_and_its_target_unchanged(tmp_path: Path, outside: Path) -> None:
    """A roadmap.yaml symlink is neither read, nor replaced, nor written through."""
    target = outside / "roadmap.yaml"
    target.write_text(ROADMAP)
    path = tmp_path / "todos" / "roadmap.yaml"
    path.parent.mkdir()
    path.symlink_to(target)
    with pytest.raises(UnsafeFile, match="is a symlink") as caught:
        add_roadmap_entry(path, "new-entry")
    assert isinstance(caught.value, OSError)
    with pytest.raises(UnsafeFile):
        roadmap_slugs(path)
    assert path.is_symlink()
    assert target.read_text() == ROADMAP
    assert sorted(p.name for p in outside.iterdir()) == ["roadmap.yaml"]


def test_roadmap_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    """A FIFO planted as roadmap.yaml is refused at once instead of hanging the writer."""
    path = tmp_path / "roadmap.yaml"
    os.mkfifo(path)
    with pytest.raises(UnsafeFile, match="not a regular file"):
        add_roadmap_entry(path, "new-entry")


@pytest.mark.parametrize("dangling", [False, True])
def test_lock_symlink_never_truncates_or_creates_its_target(
    tmp_path: Path, outside: Path, dangling: bool
) -> None:
    """A roadmap.yaml.lock symlink is refused: its target keeps its bytes (or stays absent)."""
    target = outside / "precious.txt"
    if not dangling:
        target.write_text("precious\n")
    path = tmp_path / "roadmap.yaml"
    path.write_text(ROADMAP)
    (tmp_path / "roadmap.yaml.lock").symlink_to(target)
    with pytest.raises(UnsafeFile, match=r"roadmap\.yaml\.lock is a symlink"):
        add_roadmap_entry(path, "new-entry")
    if dangling:
        assert not target.exists()
    else:
        assert target.read_text() == "precious\n"
    assert path.read_text() == ROADMAP


_HOLDER = textwrap.dedent(
    """
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("held", flush=True)
    end = time.monotonic() + 60
    while not os.path.exists(sys.argv[2]) and time.monotonic() < end:
        time.sleep(0.01)
    """
)


def _opened_here(lock: Path) -> bool:
    """Whether a descriptor of this process is open on ``lock`` (the writer thread polling it)."""
    fds = Path("/proc/self/fd")
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            if os.readlink(fd) == str(lock):
                return True
    return False


def test_the_lock_is_flock_and_waits_for_another_process(tmp_path: Path) -> None:
    """A writer waits while another process holds flock on roadmap.yaml.lock, then proceeds."""
    path = tmp_path / "roadmap.yaml"
    lock = tmp_path / "roadmap.yaml.lock"
    release = tmp_path / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock), str(release)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # The holder keeps the lock until released: a fixed hold could end, on a loaded
    # machine, before the writer ever met it.
    with LiveOutput(holder) as live:
        assert live.wait_for(lambda line: True) == ["held"], live.report()
        fd = os.open(lock, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            writer = pool.submit(add_roadmap_entry, path, "after-the-holder")
            # The writer holds the lock file open while it polls for the flock.
            wait_until(
                lambda: _opened_here(lock) or writer.done(),
                "the writer to open the lock file (or finish)",
                alive=[live],
            )
            assert not writer.done(), "the writer did not wait for the holder's lock"
            assert not path.exists()
            release.touch()
            assert writer.result(timeout=30)
        code, _out, err = live.finish(timeout=30)
    assert code == 0, err
    assert roadmap_slugs(path) == ["after-the-holder"]


def test_foreign_state_file_never_resolves(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """A state.yaml saying done resolves nothing unless the store recorded the follow-up created."""
    state = scaffold_todo(todos, make_record(), checks_report).path / "state.yaml"
    state.write_text(state.read_text().replace("status: open", "status: done"))
    resolver = StateFileResolver(todos)
    assert resolver.unresolved_reason(make_record()) is None
    failed = make_record(
        follow_up_state=FollowUpState.FAILED, follow_up_error="FollowUpConflict: taken"
    )
    why = resolver.unresolved_reason(failed)
    assert why is not None
    assert "never created by mergegate (FollowUpConflict: taken)" in why
    assert "\n" not in why
    pending = resolver.unresolved_reason(make_record(follow_up_state=FollowUpState.PENDING))
    assert pending is not None
    assert "not created yet" in pending


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("0123456789abcdef", "aaaaaaaaaaaaaaaa", "source.sha"),
        ('slug: "auth-login"', 'slug: "someone-else"', "source.slug"),
        ('"feature/auth-login"', '"feature/other"', "source.branch"),
        ('follow_up: "auth-login', 'follow_up: "x-auth-login', "follow_up"),
    ],
)
def test_state_file_linking_another_candidate_never_resolves(
    todos: Path,
    make_record: MakeRecord,
    checks_report: BlockedReport,
    old: str,
    new: str,
    field: str,
) -> None:
    """A state.yaml saying done but naming another candidate or follow-up is unresolved."""
    state = scaffold_todo(todos, make_record(), checks_report).path / "state.yaml"
    text = state.read_text().replace("status: open", "status: done")
    assert old in text
    state.write_text(text.replace(old, new, 1))
    why = StateFileResolver(todos).unresolved_reason(make_record())
    assert why is not None
    assert f"{field} is" in why
    assert "not this candidate's follow-up" in why


def test_state_file_symlink_never_resolves(
    tmp_path: Path, todos: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """A state.yaml replaced by a symlink to a file saying done is not followed."""
    state = scaffold_todo(todos, make_record(), checks_report).path / "state.yaml"
    done = tmp_path / "done.yaml"
    done.write_text(state.read_text().replace("status: open", "status: done"))
    state.unlink()
    state.symlink_to(done)
    why = StateFileResolver(todos).unresolved_reason(make_record())
    assert why is not None
    assert "is a symlink" in why


def test_resolver_refuses_todos_outside_its_boundary(
    repo: Path, outside: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """With a boundary, a todos folder that resolves outside it never resolves a follow-up."""
    state = scaffold_todo(outside, make_record(), checks_report).path / "state.yaml"
    state.write_text(state.read_text().replace("status: open", "status: done"))
    (repo / "todos").symlink_to(outside)
    assert StateFileResolver(repo / "todos").unresolved_reason(make_record()) is None
    why = StateFileResolver(repo / "todos", boundary=repo).unresolved_reason(make_record())
    assert why is not None
    assert "outside the repository" in why


def test_input_md_symlink_is_no_linkage(
    tmp_path: Path, todos: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """A folder whose input.md is a symlink to a linked copy is foreign: FollowUpConflict."""
    folder = scaffold_todo(todos, make_record(), checks_report).path
    copy = tmp_path / "input.md"
    copy.write_bytes((folder / "input.md").read_bytes())
    (folder / "input.md").unlink()
    (folder / "input.md").symlink_to(copy)
    with pytest.raises(FollowUpConflict):
        scaffold_todo(todos, make_record(), checks_report)
