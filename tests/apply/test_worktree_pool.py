"""Scratch worktrees kept between checks: nothing of one reaches the next, none outlives use."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from mergegate.apply import CheckSpec, GitApplier
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import Blocked, CandidateKey, Integrated

from ..procio import LiveOutput

Beat = Callable[[], None]

# One script for every candidate: the ``dirty`` one leaves all it can behind in
# its worktree (and checks main out there); every other one fails, saying what,
# if it finds any of it. Each records its working directory, to see reuse happen.
CHECK = r"""
set -u
pwd >> "$LOG"
if [ "$MERGEGATE_SLUG" = dirty ]; then
    git checkout -q -f main
    echo junk > junk.txt
    mkdir -p deep/er && echo junk > deep/er/junk.txt
    echo junk > ignored.log
    echo changed > a
    git update-index --skip-worktree a
    echo changed > b
    git update-index --assume-unchanged b
    rm c
    setsid sh -c 'sleep 1; echo late > late.txt' </dev/null >/dev/null 2>&1 &
    # Ends only once the writer has left the check's process group.
    while [ "$(ps -o sid= -p $! | tr -d ' ')" != "$!" ]; do sleep 0.01; done
    exit 0
fi
if [ "$MERGEGATE_SLUG" = edit ]; then
    # No git command: the index stays as the reset left it, and is kept.
    printf 'A\n' > a
    touch -r b a
    chmod +x b
    rm c
    echo junk > junk.txt
    exit 0
fi
if [ "$MERGEGATE_SLUG" = tamper ]; then
    echo "gitdir: /nonexistent" > .git
    exit 0
fi
sleep 1.5
problems=""
for f in junk.txt deep ignored.log late.txt; do
    [ -e "$f" ] && problems="$problems $f"
done
[ "$(cat a)" = "a" ] || problems="$problems a"
[ "$(cat b)" = "b" ] || problems="$problems b"
[ -x b ] && problems="$problems b-mode"
[ -e c ] || problems="$problems c"
[ -z "$(git status --porcelain --ignored)" ] || problems="$problems status"
[ "$(git rev-parse HEAD)" = "$MERGEGATE_MERGE_SHA" ] || problems="$problems head"
git symbolic-ref -q HEAD >/dev/null && problems="$problems on-a-branch"
[ "$(git rev-parse refs/heads/main)" = "$MERGEGATE_MAIN_SHA" ] || problems="$problems main-moved"
[ -z "$problems" ] || { echo "left over:$problems"; exit 1; }
"""


def _check(tmp_path: Path) -> CheckSpec:
    script = tmp_path / "check.sh"
    script.write_text(CHECK)
    return CheckSpec("leaks", ("/bin/sh", str(script)), timeout=60)


def _key(repo: Repo, slug: str, files: dict[str, str | None]) -> CandidateKey:
    sha = repo.commit(f"refs/heads/{slug}", repo.main(), files)
    return CandidateKey(slug, slug, sha)


def _used(log: Path) -> list[str]:
    return log.read_text().split()


def test_a_kept_worktree_carries_nothing_into_the_next_check(
    repo: Repo, heartbeat: Beat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files, index flags, a checked-out branch, a late writer: none reach the next check."""
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    applier = GitApplier(repo.path, checks=[_check(tmp_path)])
    with applier.reusing_worktrees():
        first = applier.apply(_key(repo, "dirty", {".gitignore": "*.log\n"}), heartbeat)
        assert isinstance(first, Integrated), first
        second = applier.apply(_key(repo, "clean", {"d": "d\n"}), heartbeat)
        assert isinstance(second, Integrated), second
        assert repo.main() == second.main_sha
        used = _used(log)
        assert used == [used[0], used[0]], used
    assert len(repo.snapshot().worktrees) == 1
    assert repo.scratch_leftovers() == []


def test_files_edited_without_git_are_restored_when_the_index_is_kept(
    repo: Repo, heartbeat: Beat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A same-size edit with its mtime set back, a mode change, a deletion: all undone."""
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    applier = GitApplier(repo.path, checks=[_check(tmp_path)])
    with applier.reusing_worktrees():
        assert isinstance(applier.apply(_key(repo, "edit", {"e": "e\n"}), heartbeat), Integrated)
        result = applier.apply(_key(repo, "clean", {"d": "d\n"}), heartbeat)
        assert isinstance(result, Integrated), result
        used = _used(log)
        assert used == [used[0], used[0]], used
    assert repo.scratch_leftovers() == []


def test_a_tampered_git_file_is_repaired_before_reuse(
    repo: Repo, heartbeat: Beat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check that rewrote ``.git`` leaves the next check a working, clean worktree."""
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    applier = GitApplier(repo.path, checks=[_check(tmp_path)])
    with applier.reusing_worktrees():
        assert isinstance(applier.apply(_key(repo, "tamper", {"t": "t\n"}), heartbeat), Integrated)
        result = applier.apply(_key(repo, "clean", {"d": "d\n"}), heartbeat)
        assert isinstance(result, Integrated), result
    assert repo.scratch_leftovers() == []


def test_a_failed_reset_replaces_the_worktree(
    repo: Repo, heartbeat: Beat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept worktree whose admin entry is gone is removed, and a new one is made."""
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    applier = GitApplier(repo.path, checks=[_check(tmp_path)])
    with applier.reusing_worktrees():
        assert isinstance(applier.apply(_key(repo, "tamper", {"t": "t\n"}), heartbeat), Integrated)
        kept = Path(_used(log)[0])
        (kept / ".git").unlink()
        subprocess.run(["git", "-C", str(repo.path), "worktree", "prune"], check=True)
        result = applier.apply(_key(repo, "clean", {"d": "d\n"}), heartbeat)
        assert isinstance(result, Integrated), result
        assert _used(log)[1] != str(kept)
        assert not kept.exists()
    assert repo.scratch_leftovers() == []


def test_outside_reusing_each_check_gets_a_new_worktree(
    repo: Repo, heartbeat: Beat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without reusing_worktrees, a worktree is removed after its check, as before."""
    log = tmp_path / "log"
    monkeypatch.setenv("LOG", str(log))
    applier = GitApplier(repo.path, checks=[_check(tmp_path)])
    assert isinstance(applier.apply(_key(repo, "tamper", {"t": "t\n"}), heartbeat), Integrated)
    assert repo.scratch_leftovers() == []
    result = applier.apply(_key(repo, "other", {"d": "d\n"}), heartbeat)
    assert isinstance(result, Integrated | Blocked)
    used = _used(log)
    assert used[0] != used[1]


# Keeps one worktree, says where, and waits to be killed.
HOLDER = """
import sys
from mergegate.apply import CheckSpec, GitApplier
from mergegate.statemachine import CandidateKey
repo, sha = sys.argv[1], sys.argv[2]
applier = GitApplier(repo, checks=[CheckSpec("pwd", ("/bin/sh", "-c", "pwd > /dev/null"))])
with applier.reusing_worktrees():
    applier.apply(CandidateKey("held", "held", sha), lambda: None)
    print("kept", flush=True)
    sys.stdin.read()
"""


@pytest.mark.slow
def test_kept_worktrees_of_a_killed_process_are_cleaned_up(repo: Repo, tmp_path: Path) -> None:
    """After kill -9 of a process keeping worktrees, cleanup_stale removes them all."""
    sha = repo.commit("refs/heads/held", repo.main(), {"h": "h\n"})
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(repo.path), sha],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with LiveOutput(proc) as live:
        assert live.wait_for(lambda line: True) == ["kept"], live.report()
        assert len(repo.scratch_leftovers()) == 1
        os.kill(proc.pid, signal.SIGKILL)
        live.finish()
    removed = GitApplier(repo.path).cleanup_stale()
    assert [p.name.partition("-")[0] for p in removed] == [str(proc.pid)]
    assert repo.scratch_leftovers() == []
    assert len(repo.snapshot().worktrees) == 1
