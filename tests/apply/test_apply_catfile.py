"""The applier's long-running cat-file: always current, restarted when needed, always stopped."""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mergegate.apply import GitApplier
from mergegate.apply.catfile import CatFile
from mergegate.apply.git import Git
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import RepositoryError

MakeRepo = Callable[..., Repo]


def test_sees_refs_and_objects_written_after_it_started(repo: Repo) -> None:
    """A ref moved, packed, or an object written by another process afterwards is seen."""
    catfile = CatFile(Git(repo.path))
    try:
        (first,) = catfile.lookup("refs/heads/main")
        later = repo.commit("refs/heads/main", repo.main(), {"n": "n\n"})
        assert catfile.lookup("refs/heads/main")[0].oid == later != first.oid
        repo.git("pack-refs", "--all")
        repo.git("update-ref", "refs/heads/main", str(first.oid))
        repo.git("pack-refs", "--all")
        assert catfile.lookup("refs/heads/main", later)[0].oid == first.oid
        assert catfile.lookup(later)[0].type == "commit"
        assert catfile.lookup("refs/heads/nope")[0].problem == "missing"
    finally:
        catfile.close()


def test_restarts_after_its_process_died(repo: Repo) -> None:
    """If cat-file is killed, the next lookup starts a new one and answers."""
    applier = GitApplier(repo.path)
    main = applier.main_sha()
    proc = applier._catfile._proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert applier.main_sha() == main
    applier.close()


def test_follows_a_replaced_repository_and_reports_a_gone_one(make_repo: MakeRepo) -> None:
    """A repository directory replaced at the same path is re-read; a vanished one raises."""
    first, second = make_repo(), make_repo()
    first.commit("refs/heads/main", None, {"a": "1\n"})
    other = second.commit("refs/heads/main", None, {"a": "2\n"})
    with GitApplier(first.path) as applier:
        applier.main_sha()
        first.path.rename(first.path.with_name("old"))
        with pytest.raises(RepositoryError, match="gone"):
            applier.main_sha()
        second.path.rename(first.path)
        assert applier.main_sha() == other


def test_close_is_idempotent_and_gc_stops_the_process(repo: Repo) -> None:
    """close() twice is fine, the applier still works after it, and GC stops the process."""
    applier = GitApplier(repo.path)
    applier.main_sha()
    applier.close()
    applier.close()
    assert applier.main_sha() == repo.main()
    proc = applier._catfile._proc
    assert proc is not None
    del applier
    gc.collect()
    assert proc.returncode is not None


def test_forked_child_uses_its_own_process(repo: Repo) -> None:
    """After fork, the child starts its own cat-file; the parent's keeps answering."""
    applier = GitApplier(repo.path)
    main = applier.main_sha()
    parent_proc = applier._catfile._proc
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            ok = applier.main_sha() == main and applier._catfile._proc is not parent_proc
            os.write(write, b"ok" if ok else b"no")
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    answer = os.read(read, 2)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert (answer, status) == (b"ok", 0)
    assert applier._catfile._proc is parent_proc
    assert applier.main_sha() == main
    applier.close()


def test_a_stalled_catfile_is_killed_at_the_deadline_and_replaced(repo: Repo) -> None:
    """A SIGSTOPped cat-file is killed after the git timeout; a new one answers the lookup."""
    catfile = CatFile(Git(repo.path, timeout=0.5))
    try:
        (main,) = catfile.lookup("refs/heads/main")
        stalled = catfile._proc
        assert stalled is not None
        os.kill(stalled.pid, signal.SIGSTOP)
        started = time.monotonic()
        assert catfile.lookup("refs/heads/main")[0].oid == main.oid
        assert time.monotonic() - started >= 0.5
        assert stalled.wait(5) == -signal.SIGKILL
        assert catfile._proc is not None
        assert catfile._proc.pid != stalled.pid
    finally:
        catfile.close()


def test_a_git_that_never_answers_is_a_one_line_repository_error(
    repo: Repo, tmp_path: Path
) -> None:
    """When every cat-file stalls, the lookup fails after two deadlines, naming the silence."""
    wrapper = tmp_path / "git-stalling"
    wrapper.write_text(
        '#!/bin/sh\ncase " $* " in *" cat-file "*) exec sleep 60;; esac\nexec git "$@"\n'
    )
    wrapper.chmod(0o755)
    catfile = CatFile(Git(repo.path, executable=str(wrapper), timeout=0.3))
    try:
        with pytest.raises(RepositoryError, match=r"cat-file stopped answering") as caught:
            catfile.lookup("refs/heads/main")
        assert "\n" not in str(caught.value)
    finally:
        catfile.close()
