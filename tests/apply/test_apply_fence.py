"""The fence in one process: the lease is checked under main's lock; recovery takes that lock."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mergegate.apply import GitApplier
from mergegate.apply.audit import repository_violations
from mergegate.apply.fence import MainLock, Moved, take_main
from mergegate.apply.git import Git, GitCommandFailed
from mergegate.apply.testing import TestRepo as Repo
from mergegate.apply.updater import REFLOG_MESSAGE, Updater
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    CandidateKey,
    Engine,
    Integrated,
    LeaseHeld,
    MoveInFlight,
    State,
)


def test_last_heartbeat_runs_while_main_is_locked(repo: Repo) -> None:
    """The heartbeat before the move runs while git holds main.lock; recovery is refused then."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    applier = GitApplier(repo.path)
    lock = repo.path / "refs" / "heads" / "main.lock"
    seen: list[tuple[bool, str]] = []

    def beat() -> None:
        locked = lock.exists()
        try:
            with applier.hold_main():
                seen.append((locked, "held"))
        except MoveInFlight as err:
            seen.append((locked, f"refused:{err.holder}"))

    result = applier.apply(CandidateKey("feat", "feat", sha), beat)
    assert isinstance(result, Integrated)
    assert seen[:-1] == [(False, "held")] * (len(seen) - 1)
    assert seen[-1][0] is True
    assert seen[-1][1].startswith("refused:")
    assert not lock.exists()
    assert repo.main() == result.main_sha


def test_lost_lease_under_the_lock_aborts_the_move(repo: Repo) -> None:
    """A heartbeat that raises under the lock leaves main, and no lock, behind."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    before = repo.main()
    applier = GitApplier(repo.path)
    lock = repo.path / "refs" / "heads" / "main.lock"

    def beat() -> None:
        if lock.exists():
            raise LeaseHeld("main", "recoverer", datetime.now(UTC))

    with pytest.raises(LeaseHeld):
        applier.apply(CandidateKey("feat", "feat", sha), beat)
    assert repo.main() == before
    assert not lock.exists()
    assert list((repo.path / "mergegate" / "movers").glob("*.json")) == []


def test_repository_hooks_do_not_run_in_plumbing(repo: Repo, tmp_path: Path) -> None:
    """A reference-transaction hook of the repository never runs inside mergegate's move."""
    ran = tmp_path / "ran"
    hook = repo.path / "hooks" / "reference-transaction"
    hook.write_text(f"#!/bin/sh\ntouch {ran}\n")
    hook.chmod(0o755)
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    ran.unlink(missing_ok=True)
    result = GitApplier(repo.path).apply(CandidateKey("feat", "feat", sha), lambda: None)
    assert isinstance(result, Integrated)
    assert not ran.exists()
    configured = GitApplier(repo.path, hooks_path=str(repo.path / "hooks"))
    other = repo.commit("refs/heads/other", repo.main(), {"y": "y\n"})
    assert isinstance(
        configured.apply(CandidateKey("other", "other", other), lambda: None), Integrated
    )
    assert ran.exists()


def test_stale_lock_of_a_dead_mover_is_broken_only_when_asked(repo: Repo) -> None:
    """A main.lock whose recorded holder is dead is removed by hold_main(break_stale=True) only."""
    applier = GitApplier(repo.path)
    lock = applier.main_lock
    # A holder that dies at once, leaving its lock and its record behind.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    movers = repo.path / "mergegate" / "movers"
    movers.mkdir(parents=True)
    record = {
        "host": socket.gethostname(),
        "pid": pid,
        "started": "1",
        "git_pid": pid,
        "git_started": "1",
    }
    (movers / f"x-{pid}-{pid}.json").write_text(json.dumps(record))
    lock.write_text(repo.main() + "\n")
    with pytest.raises(MoveInFlight), applier.hold_main():
        pass
    assert lock.exists()
    with applier.hold_main(break_stale=True) as held:
        assert held.stale_lock == str(lock)
        assert held.main_sha == repo.main()
    assert not lock.exists()


def test_lock_without_a_mergegate_record_is_left_alone(repo: Repo) -> None:
    """A main.lock that no mergegate process recorded is never removed."""
    applier = GitApplier(repo.path)
    applier.main_lock.write_text(repo.main() + "\n")
    with (
        pytest.raises(MoveInFlight, match="not a mergegate mover"),
        applier.hold_main(break_stale=True),
    ):
        pass
    assert applier.main_lock.exists()


def test_repository_violations_name_double_and_unexplained_merges(
    repo: Repo, tmp_path: Path
) -> None:
    """A second merge of one candidate and a merge of a never-integrated sha are named by commit."""
    store = SQLiteStore(tmp_path / "db.sqlite3")
    engine = Engine(store)
    applier = GitApplier(repo.path)
    c1 = repo.commit("refs/heads/c1", repo.main(), {"c1": "1\n"})
    c2 = repo.commit("refs/heads/c2", repo.main(), {"c2": "2\n"})
    engine.submit(CandidateKey("c1", "c1", c1))
    engine.submit(CandidateKey("c2", "c2", c2))
    assert engine.apply("c1", applier, owner="t").state is State.INTEGRATED
    ref = "refs/heads/main"
    assert repository_violations(applier.git, ref, store.candidates(), store.log()) == []
    forged = []
    for sha in (c1, c2):
        main = repo.main()
        tree = repo.git("rev-parse", f"{main}^{{tree}}")
        commit = repo.git(
            "commit-tree", "-p", main, "-p", sha, "-m", f"forged\n\nCandidate: {sha}", tree
        )
        repo.git("update-ref", ref, commit, main)
        forged.append(commit)
    found = repository_violations(applier.git, ref, store.candidates(), store.log())
    assert [(v.commit, v.candidate_sha) for v in found] == [(forged[0], c1), (forged[1], c2)]
    assert found == repository_violations(applier.git, ref, store.candidates(), store.log())
    store.close()


def test_rewound_main_is_a_violation(repo: Repo, tmp_path: Path) -> None:
    """An integrated candidate whose recorded main was rewound away is named."""
    store = SQLiteStore(tmp_path / "db.sqlite3")
    engine = Engine(store)
    applier = GitApplier(repo.path)
    base = repo.main()
    c1 = repo.commit("refs/heads/c1", base, {"c1": "1\n"})
    engine.submit(CandidateKey("c1", "c1", c1))
    merged = engine.apply("c1", applier, owner="t")
    assert merged.state is State.INTEGRATED
    repo.git("update-ref", "refs/heads/main", base)
    [found] = repository_violations(applier.git, "refs/heads/main", store.candidates(), store.log())
    assert merged.transition is not None
    assert f"main={found.commit}" == merged.transition.reason
    assert found.candidate_sha == c1
    assert "not in refs/heads/main" in found.problem
    store.close()


_KILLED_MOVER = """
import os, signal, sys
from pathlib import Path
from mergegate.apply.fence import take_main
from mergegate.apply.git import Git

repo, old, new = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
held = take_main(Git(repo), repo, "refs/heads/main", old, new)
assert type(held).__name__ == "MainLock", held
# A crashed host: the update-ref (in a group of its own, apply/git.py) and the mover.
os.kill(held._proc.pid, signal.SIGKILL)
os.killpg(0, signal.SIGKILL)
"""


def test_stale_locks_of_a_killed_mover_in_a_bare_repository_on_main(repo: Repo) -> None:
    """A killed mover in a bare repository whose HEAD is main leaves HEAD.lock too: both go."""
    # `git clone --bare` leaves HEAD on main; git then locks HEAD with main.
    subprocess.run(
        ["git", "-C", str(repo.path), "symbolic-ref", "HEAD", "refs/heads/main"], check=True
    )
    old = repo.main()
    new = repo.commit("refs/heads/feat", old, {"x": "x\n"})
    mover = subprocess.run(
        [sys.executable, "-c", _KILLED_MOVER, str(repo.path), old, new],
        start_new_session=True,
        check=False,
    )
    assert mover.returncode == -9
    applier = GitApplier(repo.path)
    head_lock = repo.path / "HEAD.lock"
    assert applier.main_lock.exists()
    assert head_lock.exists()
    with applier.hold_main(break_stale=True) as held:
        assert held.stale_lock == str(applier.main_lock)
        assert held.main_sha == old
    assert not applier.main_lock.exists()
    assert not head_lock.exists()
    assert isinstance(applier.apply(CandidateKey("feat", "feat", new), lambda: None), Integrated)


def test_merge_whose_message_names_another_candidate_is_a_violation(
    repo: Repo, tmp_path: Path
) -> None:
    """A merge that says 'Candidate: X' of an integrated X but merges another commit is named."""
    store = SQLiteStore(tmp_path / "db.sqlite3")
    engine = Engine(store)
    applier = GitApplier(repo.path)
    ref = "refs/heads/main"
    # c1 is integrated without a merge of its own: main already contains it.
    c1 = repo.commit("refs/heads/c1", repo.main(), {"c1": "1\n"})
    repo.git("update-ref", ref, c1)
    engine.submit(CandidateKey("c1", "c1", c1))
    assert engine.apply("c1", applier, owner="t").state is State.INTEGRATED
    assert repository_violations(applier.git, ref, store.candidates(), store.log()) == []
    sneaky = repo.commit("refs/heads/sneaky", repo.main(), {"s": "s\n"})
    main = repo.main()
    tree = repo.git("rev-parse", f"{sneaky}^{{tree}}")
    forged = repo.git("commit-tree", "-p", main, "-p", sneaky, "-m", f"x\n\nCandidate: {c1}", tree)
    repo.git("update-ref", ref, forged, main)
    [found] = repository_violations(applier.git, ref, store.candidates(), store.log())
    assert (found.commit, found.candidate_sha) == (forged, c1)
    assert found.problem == f"says it merges candidate {c1}, but merges {sneaky}"
    store.close()


def test_locks_of_a_killed_update_ref_stay_breakable(repo: Repo) -> None:
    """When only the mover's update-ref is killed, recovery can break the lock it left."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    before = repo.main()
    applier = GitApplier(repo.path)

    def beat() -> None:
        if applier.main_lock.exists():  # main is held: a stray kill hits update-ref only
            found = subprocess.run(
                ["pgrep", "-P", str(os.getpid()), "-f", "update-ref --stdin"],
                capture_output=True,
                text=True,
                check=True,
            )
            for pid in found.stdout.split():
                os.kill(int(pid), signal.SIGKILL)

    with pytest.raises(GitCommandFailed):
        applier.apply(CandidateKey("feat", "feat", sha), beat)
    assert repo.main() == before
    assert applier.main_lock.exists()
    # The mover (this process) lives on, as an orchestrator would: the lock is still breakable.
    with applier.hold_main(break_stale=True) as held:
        assert held.stale_lock == str(applier.main_lock)
    assert isinstance(applier.apply(CandidateKey("feat", "feat", sha), lambda: None), Integrated)


def _update_refs() -> list[int]:
    """The ``git update-ref --stdin`` children of this process now."""
    found = subprocess.run(
        ["pgrep", "-P", str(os.getpid()), "-f", "update-ref --stdin"],
        capture_output=True,
        text=True,
        check=False,
    )
    return sorted(int(pid) for pid in found.stdout.split())


def test_each_move_takes_the_spare_update_ref_started_as_the_last_ended(repo: Repo) -> None:
    """Three moves: each runs in the spare the one before left, which holds nothing meanwhile."""
    applier = GitApplier(repo.path)
    held: list[list[int]] = []
    between: list[list[int]] = []

    def beat() -> None:
        if applier.main_lock.exists():
            held.append(_update_refs())

    for name in ("a", "b", "c"):
        sha = repo.commit(f"refs/heads/{name}", repo.main(), {name: f"{name}\n"})
        assert isinstance(applier.apply(CandidateKey(name, name, sha), beat), Integrated)
        # The answered process exits on its own; the spare waits.
        between.append(wait_until_one(_update_refs))
    assert [len(pids) for pids in held] == [1, 1, 1], held
    assert [pids[0] for pids in held[1:]] == [pids[0] for pids in between[:-1]], (held, between)
    assert len({pids[0] for pids in held}) == 3, held
    # Between moves nothing is held: no lock, and no mover record names the spare.
    assert not applier.main_lock.exists()
    assert list((repo.path / "mergegate" / "movers").glob("*.json")) == []
    applier.close()
    assert _update_refs() == []


def wait_until_one(probe: Callable[[], list[int]]) -> list[int]:
    """``probe()`` once it finds exactly one process (the one answered may still be exiting)."""
    deadline = time.monotonic() + 10
    while len(found := probe()) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def test_a_move_in_a_spare_that_waited_is_logged_at_its_own_time(tmp_path: Path) -> None:
    """git dates a process's reflog entries at its first write: a spare's move has its own time."""
    work = tmp_path / "clone"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    for n in range(3):
        subprocess.run(
            ["git", "-C", str(work), "commit", "-q", "--allow-empty", "-m", f"c{n}"],
            check=True,
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@x",
                "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@x",
            },
        )
    git = Git(work)
    c2, c1, c0 = git.run("rev-list", "main").text.split()
    git.run("update-ref", "refs/heads/main", c0)
    spare = Updater(git)
    windows = []
    for old, new in ((c0, c1), (c1, c2)):
        time.sleep(1.2)  # the spare waits, as one does while the next candidate merges
        before = int(time.time())
        lock = take_main(git, work / ".git", "refs/heads/main", old, new, spare=spare)
        assert isinstance(lock, MainLock)
        lock.commit()
        windows.append((before, int(time.time())))
    spare.close()
    log = (work / ".git" / "logs" / "refs" / "heads" / "main").read_text().splitlines()
    logged = [int(line.split(">")[1].split()[0]) for line in log[-2:]]
    # Each entry is dated within its own move; a process kept for both dated both at the first.
    for at, (before, after) in zip(logged, windows, strict=True):
        assert before <= at <= after, (logged, windows)
    # And each names mergegate, so `git reflog main` tells its moves from a person's.
    assert [line.split("\t", 1)[1] for line in log[-2:]] == [REFLOG_MESSAGE] * 2, log


def test_a_second_mover_beside_the_spare_starts_its_own(repo: Repo) -> None:
    """While the spare update-ref holds one ref, another take starts its own git, as before."""
    git = Git(repo.path)
    spare = Updater(git)
    main = repo.main()
    other = repo.commit("refs/heads/other", main, {"o": "o\n"})
    first = take_main(git, repo.path, "refs/heads/main", main, other, spare=spare)
    assert isinstance(first, MainLock)
    [first_pid] = _update_refs()
    second = take_main(git, repo.path, "refs/heads/other", other, main, spare=spare)
    assert isinstance(second, MainLock)
    both = _update_refs()
    assert first_pid in both
    assert len(both) == 2, both
    second.commit()
    first.commit()
    assert (repo.main(), repo.git("rev-parse", "refs/heads/other")) == (other, main)
    # Both ended with their transactions; only the next spare waits.
    waiting = wait_until_one(_update_refs)
    assert len(waiting) == 1
    assert first_pid not in waiting
    spare.close()
    assert _update_refs() == []


def test_a_refused_move_in_the_spare_starts_a_new_one(repo: Repo) -> None:
    """git ends update-ref on a refused prepare; the next move starts another and succeeds."""
    git = Git(repo.path)
    spare = Updater(git)
    main = repo.main()
    new = repo.commit("refs/heads/new", main, {"n": "n\n"})
    stale = take_main(git, repo.path, "refs/heads/main", new, main, spare=spare)
    assert isinstance(stale, Moved)
    assert "but expected" in stale.stderr
    assert _update_refs() == []
    lock = take_main(git, repo.path, "refs/heads/main", main, new, spare=spare)
    assert isinstance(lock, MainLock)
    lock.commit()
    assert repo.main() == new
    spare.close()


def test_a_dead_movers_stopped_git_is_named_as_what_to_continue(repo: Repo) -> None:
    """Mover gone, its git stopped holding main: recover names the git and says it will abort."""
    from mergegate.apply import fence, liveness  # the record's layout is the fence's own

    dead = subprocess.Popen(["true"])
    dead.wait()
    stopped = subprocess.Popen(["sleep", "60"])
    try:
        os.kill(stopped.pid, signal.SIGSTOP)
        # The stop lands asynchronously: read on only once /proc says it did.
        deadline = time.monotonic() + 10
        while not liveness.stopped(stopped.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert liveness.stopped(stopped.pid)
        record = fence._Record(
            socket.gethostname(), dead.pid, None, stopped.pid, fence._start_time(stopped.pid)
        )
        fence._write_record(repo.path / "mergegate" / "movers", record)
        fence.lock_path(repo.path, "refs/heads/main").write_text("")
        with pytest.raises(MoveInFlight) as err:
            fence.break_if_stale(Git(repo.path), repo.path, "refs/heads/main")
        text = str(err.value)
        assert f"the git {stopped.pid} of the mover" in text, text
        assert f"`kill -CONT {stopped.pid}` lets it abort the move" in text, text
    finally:
        stopped.kill()
        stopped.wait()
