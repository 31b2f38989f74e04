"""GitApplier on real repositories: one test per outcome and per safety rule."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mergegate.apply import (
    CheckSpec,
    GitApplier,
    GitCommandFailed,
    GitNotFound,
    Identity,
    MainCheckedOut,
)
from mergegate.apply.built import NULL_SHA
from mergegate.apply.git import Git
from mergegate.apply.testing import TestRepo as Repo
from mergegate.statemachine import (
    AlreadyIntegrated,
    Blocked,
    CandidateKey,
    Integrated,
    InvalidInput,
    Reason,
    RepositoryError,
)

Beat = Callable[[], None]
MakeRepo = Callable[..., Repo]


def wait_dead(pid: int, seconds: float = 5.0) -> bool:
    """Whether ``pid`` is gone (or a zombie) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def key(repo: Repo, branch: str, slug: str | None = None) -> CandidateKey:
    """The identity of ``branch``'s tip."""
    sha = repo.git("rev-parse", f"refs/heads/{branch}")
    return CandidateKey(slug or branch.replace("/", "-"), branch, sha)


def test_clean_candidate_is_integrated_with_two_parents(repo: Repo, heartbeat: Beat) -> None:
    """A clean merge moves main to a new commit whose parents are old main and the sha."""
    old = repo.main()
    sha = repo.commit("refs/heads/feat", old, {"a": "changed\n"})
    before = repo.snapshot()
    result = GitApplier(repo.path).apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Integrated)
    assert result.previous_main == old
    assert result.attempts == (old,)
    assert repo.main() == result.main_sha
    assert repo.parents(result.main_sha) == [old, sha]
    assert repo.git("show", "-s", "--format=%s%n%an <%ae>", result.main_sha) == (
        f"mergegate: integrate feat (feat@{sha[:7]})\nmergegate <mergegate@localhost>"
    )
    assert dict(repo.snapshot().refs) == {**before.refs, "refs/heads/main": result.main_sha}


def test_identity_is_configurable(repo: Repo, heartbeat: Beat) -> None:
    """The merge commit's author and committer are the configured identity."""
    repo.commit("refs/heads/feat", repo.main(), {"d": "d\n"})
    applier = GitApplier(repo.path, identity=Identity("Bot", "bot@example.com"))
    result = applier.apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Integrated)
    assert repo.git("show", "-s", "--format=%an <%ae>|%cn <%ce>", result.main_sha) == (
        "Bot <bot@example.com>|Bot <bot@example.com>"
    )


def test_identity_rejects_a_forged_line() -> None:
    """An identity with a newline or angle bracket cannot be built."""
    with pytest.raises(InvalidInput, match="name"):
        Identity("a\nb")
    with pytest.raises(InvalidInput, match="email"):
        Identity("a", "x>y")


def test_ancestor_is_already_integrated(repo: Repo, heartbeat: Beat) -> None:
    """A sha already contained in main is reported as such; main does not move."""
    old = repo.main()
    repo.commit("refs/heads/main", old, {"a": "next\n"})
    repo.git("update-ref", "refs/heads/old", old)
    main = repo.main()
    result = GitApplier(repo.path).apply(key(repo, "old"), heartbeat)
    assert result == AlreadyIntegrated(main)
    assert repo.main() == main


def test_same_change_already_on_main_is_still_merged(repo: Repo, heartbeat: Beat) -> None:
    """A candidate whose change main already has (not its commit) gets a merge commit."""
    old = repo.main()
    repo.commit("refs/heads/main", old, {"a": "same\n"})
    sha = repo.commit("refs/heads/twin", old, {"a": "same\n"})
    result = GitApplier(repo.path).apply(key(repo, "twin"), heartbeat)
    assert isinstance(result, Integrated)
    assert repo.parents(result.main_sha)[1] == sha


def test_conflict_blocks_with_sorted_paths(repo: Repo, heartbeat: Beat) -> None:
    """Conflicting edits block with merge_conflict and the sorted conflicted paths."""
    old = repo.main()
    repo.commit("refs/heads/main", old, {"c": "main\n", "a": "main\n"})
    repo.commit("refs/heads/feat", old, {"c": "feat\n", "a": "feat\n", "b": "fine\n"})
    main = repo.main()
    before = repo.snapshot()
    result = GitApplier(repo.path).apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Blocked)
    assert result.report.reason is Reason.MERGE_CONFLICT
    assert result.report.main_sha == main
    assert result.report.evidence.conflicted_paths == ("a", "c")
    assert repo.snapshot() == before


def test_failing_check_blocks_and_keeps_main(
    repo: Repo, heartbeat: Beat, marker_check: CheckSpec
) -> None:
    """A failing check blocks with checks_failed, its exit code and output tail."""
    repo.commit("refs/heads/feat", repo.main(), {"FAIL": "x\n"})
    loud = CheckSpec("loud", (sys.executable, "-c", "print('hello from the check')"), 30)
    before = repo.snapshot()
    applier = GitApplier(repo.path, checks=[loud, marker_check])
    result = applier.apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Blocked)
    assert result.report.reason is Reason.CHECKS_FAILED
    assert result.report.main_sha == before.refs["refs/heads/main"]
    loud_result, marker_result = result.report.evidence.checks
    assert (loud_result.exit_code, loud_result.output_tail) == (0, "hello from the check\n")
    assert (marker_result.name, marker_result.exit_code) == ("marker", 1)
    assert repo.snapshot() == before
    assert repo.scratch_leftovers() == []


def test_checks_run_in_the_merge_commit(repo: Repo, heartbeat: Beat) -> None:
    """Checks see the merged tree, and the MERGEGATE_* variables, but no GIT_DIR."""
    repo.commit("refs/heads/feat", repo.main(), {"new": "n\n"})
    probe = (
        "import os, sys; ok = os.path.exists('new') and os.path.exists('a')"
        " and 'GIT_DIR' not in os.environ"
        " and os.environ['MERGEGATE_SLUG'] == 'feat'; sys.exit(0 if ok else 3)"
    )
    spec = CheckSpec("probe", (sys.executable, "-c", probe), 30)
    os.environ["GIT_DIR"] = "/nonexistent"
    try:
        result = GitApplier(repo.path, checks=[spec]).apply(key(repo, "feat"), heartbeat)
    finally:
        del os.environ["GIT_DIR"]
    assert isinstance(result, Integrated)
    assert repo.scratch_leftovers() == []


def test_shell_check_runs_only_when_asked(repo: Repo, heartbeat: Beat) -> None:
    """shell=True runs one command string through /bin/sh; argv checks never see a shell."""
    repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    shell = CheckSpec("sh", ("test -f x && echo shell-ok",), 30, shell=True)  # noqa: S604 - the configured-shell path is under test
    argv = CheckSpec("argv", ("echo", "a;", "$HOME"), 30)
    result = GitApplier(repo.path, checks=[shell, argv]).apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Integrated)
    with pytest.raises(InvalidInput, match="exactly one command"):
        CheckSpec("sh", ("a", "b"), 30, shell=True)  # noqa: S604 - the configured-shell path is under test


def test_check_timeout_kills_the_process_group(repo: Repo, heartbeat: Beat, tmp_path: Path) -> None:
    """A check past its timeout is killed with everything it started, and blocks."""
    repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    pidfile = tmp_path / "child.pid"
    script = f"sleep 30 & echo $! > {pidfile}; echo started; wait"
    spec = CheckSpec("slow", (script,), 0.5, shell=True)  # noqa: S604 - the configured-shell path is under test
    result = GitApplier(repo.path, checks=[spec]).apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Blocked)
    (check,) = result.report.evidence.checks
    assert check.timed_out
    assert check.exit_code is None
    assert check.output_tail.startswith("started\n")
    pid = int(pidfile.read_text())
    stat = Path(f"/proc/{pid}/stat")
    assert wait_dead(pid), f"pid {pid} still alive after 5 s: {stat.read_text()}"
    assert repo.scratch_leftovers() == []


def test_missing_branch_is_a_precondition(repo: Repo, heartbeat: Beat) -> None:
    """A candidate whose branch does not exist blocks, naming the branch."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    result = GitApplier(repo.path).apply(CandidateKey("feat", "gone", sha), heartbeat)
    assert isinstance(result, Blocked)
    assert result.report.reason is Reason.PRECONDITION_FAILED
    assert result.report.main_sha == repo.main()
    assert result.report.evidence.diagnostic == "branch refs/heads/gone does not exist"


def test_branch_must_contain_the_sha(repo: Repo, heartbeat: Beat) -> None:
    """A branch that moved past the sha is fine; one that no longer contains it blocks."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    repo.commit("refs/heads/feat", sha, {"y": "y\n"})
    repo.commit("refs/heads/other", repo.main(), {"z": "z\n"})
    applier = GitApplier(repo.path)
    result = applier.apply(CandidateKey("other", "other", sha), heartbeat)
    assert isinstance(result, Blocked)
    assert "does not contain candidate sha" in (result.report.evidence.diagnostic or "")
    assert isinstance(applier.apply(CandidateKey("feat", "feat", sha), heartbeat), Integrated)


def test_branch_ref_can_be_optional(repo: Repo, heartbeat: Beat) -> None:
    """With require_branch_ref=False, a fetched sha without a local branch integrates."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    applier = GitApplier(repo.path, require_branch_ref=False)
    result = applier.apply(CandidateKey("feat", "gone", sha), heartbeat)
    assert isinstance(result, Integrated)


@pytest.mark.parametrize(
    ("what", "expected"),
    [("missing", "is missing"), ("tree", "is a tree, not a commit"), ("blob", "is a blob")],
)
def test_sha_must_be_a_commit(repo: Repo, heartbeat: Beat, what: str, expected: str) -> None:
    """A sha that is missing or names a tree or blob blocks as a precondition."""
    sha = {
        "missing": "1234567890abcdef1234567890abcdef12345678",
        "tree": repo.git("rev-parse", "refs/heads/main^{tree}"),
        "blob": repo.git("rev-parse", "refs/heads/main:a"),
    }[what]
    repo.git("update-ref", "refs/heads/feat", repo.main())
    result = GitApplier(repo.path).apply(CandidateKey("feat", "feat", sha), heartbeat)
    assert isinstance(result, Blocked)
    assert result.report.reason is Reason.PRECONDITION_FAILED
    assert expected in (result.report.evidence.diagnostic or "")


def test_unrelated_history_is_a_precondition(repo: Repo, heartbeat: Beat) -> None:
    """A candidate that shares no history with main blocks instead of raising."""
    sha = repo.commit("refs/heads/lonely", None, {"q": "q\n"})
    result = GitApplier(repo.path).apply(CandidateKey("lonely", "lonely", sha), heartbeat)
    assert isinstance(result, Blocked)
    assert result.report.reason is Reason.PRECONDITION_FAILED
    assert "shares no history" in (result.report.evidence.diagnostic or "")


def test_contains_tells_recovery_what_main_has(repo: Repo, heartbeat: Beat) -> None:
    """contains() is true for main's history only, and false for unknown shas."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    applier = GitApplier(repo.path)
    assert not applier.contains(sha)
    assert isinstance(applier.apply(key(repo, "feat"), heartbeat), Integrated)
    assert applier.contains(sha)
    assert applier.contains(repo.main())
    assert not applier.contains("1234567890abcdef1234567890abcdef12345678")
    with pytest.raises(InvalidInput):
        applier.contains("--upload-pack=x")


def test_missing_main_is_a_precondition(make_repo: MakeRepo, heartbeat: Beat) -> None:
    """Without main, the report names it and carries the null sha as main."""
    repo = make_repo()
    sha = repo.commit("refs/heads/feat", None, {"x": "x\n"})
    applier = GitApplier(repo.path)
    result = applier.apply(CandidateKey("feat", "feat", sha), heartbeat)
    assert isinstance(result, Blocked)
    assert result.report.main_sha == NULL_SHA
    assert result.report.evidence.diagnostic == "refs/heads/main does not resolve to a commit"
    with pytest.raises(RepositoryError, match="does not resolve"):
        applier.main_sha()


def test_vanished_repository_is_a_precondition(repo: Repo, heartbeat: Beat) -> None:
    """A repository that disappears after construction blocks, saying it is unreadable."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    applier = GitApplier(repo.path)
    moved = repo.path.with_name("elsewhere")
    repo.path.rename(moved)
    result = applier.apply(CandidateKey("feat", "feat", sha), heartbeat)
    assert isinstance(result, Blocked)
    assert "is not readable" in (result.report.evidence.diagnostic or "")


def test_not_a_repository_is_refused(tmp_path: Path) -> None:
    """A directory that is not a repository (even inside one) is refused at construction."""
    outer = Repo.create(tmp_path / "outer", bare=False)
    inner = outer.path / "sub"
    inner.mkdir()
    with pytest.raises(RepositoryError, match="not a readable git repository"):
        GitApplier(inner)


def test_missing_git_is_one_clear_line(repo: Repo) -> None:
    """Without git on PATH the error says to install git or fix PATH."""
    with pytest.raises(GitNotFound, match="install git or fix PATH") as info:
        GitApplier(repo.path, git_executable="git-that-does-not-exist")
    assert "\n" not in str(info.value)


def test_checked_out_main_with_changes_is_refused(make_repo: MakeRepo) -> None:
    """A checkout of main with an edited file is refused with one line, pointing at a bare clone."""
    repo = make_repo(bare=False)
    repo.commit("refs/heads/main", None, {"a": "a\n"})
    repo.git("checkout", "-q", "main")
    (repo.path / "a").write_text("edited\n")
    with pytest.raises(MainCheckedOut, match="git clone --bare") as info:
        GitApplier(repo.path)
    assert "\n" not in str(info.value)
    assert "its files differ from its index" in str(info.value)


def test_main_staged_in_a_linked_worktree_is_refused(repo: Repo, tmp_path: Path) -> None:
    """main checked out in a linked worktree with a staged change is refused too."""
    repo.git("worktree", "add", "-q", str(tmp_path / "wt"), "main")
    (tmp_path / "wt" / "new").write_text("n\n")
    Git(tmp_path / "wt").run("add", "new")
    with pytest.raises(MainCheckedOut, match=str(tmp_path / "wt")) as info:
        GitApplier(repo.path)
    assert "its index differs from HEAD" in str(info.value)


def test_checkout_of_another_branch_is_left_alone(
    make_repo: MakeRepo, heartbeat: Beat, marker_check: CheckSpec
) -> None:
    """A canonical checkout on another branch keeps its status through an apply."""
    repo = make_repo(bare=False)
    base = repo.commit("refs/heads/main", None, {"a": "a\n", "b": "b\n"})
    repo.git("update-ref", "refs/heads/work", base)
    repo.git("reset", "-q", "--hard")
    (repo.path / "a").write_text("dirty\n")
    (repo.path / "untracked").write_text("u\n")
    repo.commit("refs/heads/feat", base, {"b": "feat\n"})
    before = repo.snapshot()
    applier = GitApplier(repo.path, checks=[marker_check])
    result = applier.apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Integrated)
    after = repo.snapshot()
    assert after.status == before.status != ""
    assert after.worktrees == before.worktrees


def test_lost_lease_leaves_main_untouched(repo: Repo, marker_check: CheckSpec) -> None:
    """If the heartbeat raises at any call, the error propagates and main stays put."""
    repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    applier = GitApplier(repo.path, checks=[marker_check])
    before = repo.snapshot()
    calls = 0

    def count() -> None:
        nonlocal calls
        calls += 1

    assert isinstance(applier.apply(key(repo, "feat"), count), Integrated)
    repo.git("update-ref", "refs/heads/main", before.refs["refs/heads/main"])
    for fail_at in range(1, calls + 1):
        seen = 0

        def beat(at: int = fail_at) -> None:
            nonlocal seen
            seen += 1
            if seen == at:
                raise LeaseLost

        with pytest.raises(LeaseLost):
            applier.apply(key(repo, "feat"), beat)
        assert repo.snapshot() == before
        assert repo.scratch_leftovers() == []


class LeaseLost(Exception):
    """What a test heartbeat raises."""


def test_main_moved_is_retried_against_the_new_main(repo: Repo) -> None:
    """When main moves before the swap, the apply recomputes on the new main."""
    sha = repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    moves: list[str] = []
    calls = 0

    def beat() -> None:
        # Without checks an attempt beats twice; the second beat is right before the swap.
        nonlocal calls
        calls += 1
        if calls in (2, 4):
            moves.append(repo.commit("refs/heads/main", repo.main(), {f"m{calls}": "m\n"}))

    result = GitApplier(repo.path).apply(key(repo, "feat"), beat)
    assert isinstance(result, Integrated)
    assert result.previous_main == moves[-1]
    assert len(result.attempts) == 3
    assert result.attempts[1:] == tuple(moves)
    assert repo.parents(result.main_sha) == [moves[-1], sha]


def test_main_moving_every_time_blocks_with_each_attempt(repo: Repo) -> None:
    """When main moves at every try, main_moved lists every main that was tried."""
    repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    first = repo.main()
    moves: list[str] = []

    def beat() -> None:
        moves.append(repo.commit("refs/heads/main", repo.main(), {f"m{len(moves)}": "m\n"}))

    result = GitApplier(repo.path, max_main_retries=1).apply(key(repo, "feat"), beat)
    assert isinstance(result, Blocked)
    assert result.report.reason is Reason.MAIN_MOVED
    attempts = result.report.evidence.main_attempts
    assert len(attempts) == 2
    assert attempts[0] == first
    assert result.report.main_sha == attempts[-1]
    assert repo.main() == moves[-1]


def test_bad_configuration_is_one_line(repo: Repo) -> None:
    """Bad constructor values raise InvalidInput naming the value."""
    with pytest.raises(InvalidInput, match="main branch"):
        GitApplier(repo.path, main_branch="--upload-pack=x")
    with pytest.raises(InvalidInput, match="max_main_retries"):
        GitApplier(repo.path, max_main_retries=-1)
    with pytest.raises(InvalidInput, match="remote"):
        GitApplier(repo.path, remote="-x")
    with pytest.raises(InvalidInput, match="remote"):
        GitApplier(repo.path, remote="nowhere")
    with pytest.raises(InvalidInput, match="heartbeat_every"):
        GitApplier(repo.path, heartbeat_every=0)
    with pytest.raises(InvalidInput, match="checks"):
        GitApplier(repo.path, checks=["make test"])  # type: ignore[list-item]


def test_push_goes_first_and_is_conditional(repo: Repo, heartbeat: Beat, tmp_path: Path) -> None:
    """With a remote, main is pushed with a lease, then moved locally."""
    remote = tmp_path / "remote.git"
    repo.git("clone", "-q", "--bare", "--end-of-options", str(repo.path), str(remote))
    repo.git("remote", "add", "origin", str(remote))
    repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    result = GitApplier(repo.path, remote="origin").apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Integrated)
    assert Repo(remote, bare=True).main() == result.main_sha == repo.main()


def test_remote_moved_main_is_followed(repo: Repo, heartbeat: Beat, tmp_path: Path) -> None:
    """The remote's main moved by someone else: local main follows it and the merge goes on top."""
    remote = Repo(tmp_path / "remote.git", bare=True)
    repo.git("clone", "-q", "--bare", "--end-of-options", str(repo.path), str(remote.path))
    outside = remote.commit("refs/heads/main", remote.main(), {"other": "o\n"})
    repo.git("remote", "add", "origin", str(remote.path))
    repo.commit("refs/heads/feat", repo.main(), {"x": "x\n"})
    result = GitApplier(repo.path, remote="origin").apply(key(repo, "feat"), heartbeat)
    assert isinstance(result, Integrated), result
    assert result.previous_main == outside
    assert Repo(remote.path, bare=True).main() == result.main_sha == repo.main()


def test_cleanup_stale_removes_dead_worktrees_only(repo: Repo) -> None:
    """cleanup_stale removes scratch worktrees of dead pids and keeps live ones."""
    applier = GitApplier(repo.path)
    root = Path(repo.git("rev-parse", "--path-format=absolute", "--git-common-dir"))
    root = root / "mergegate" / "worktrees"
    dead = root / "999999999-dead"
    live = root / f"{os.getpid()}-live"
    for path in (dead, live):
        repo.git("worktree", "add", "-q", "--detach", str(path), "main")
    (root / "junk").mkdir()
    removed = applier.cleanup_stale()
    assert sorted(p.name for p in removed) == ["999999999-dead", "junk"]
    assert repo.scratch_leftovers() == [live.name]
    repo.git("worktree", "remove", "--force", str(live))
    assert applier.cleanup_stale() == []
    assert len(repo.snapshot().worktrees) == 1


def test_half_made_worktree_of_a_killed_add_is_repaired(repo: Repo) -> None:
    """An empty commondir left by a killed `worktree add` no longer stops the integrator."""
    root = Path(repo.git("rev-parse", "--path-format=absolute", "--git-common-dir"))
    root = root / "mergegate" / "worktrees"
    dead = root / "999999999-0123456789ab"
    repo.git("worktree", "add", "-q", "--detach", str(dead), "main")
    # What a SIGKILL between git's truncate and write of commondir leaves behind.
    (root.parent.parent / "worktrees" / dead.name / "commondir").write_text("")
    with pytest.raises(GitCommandFailed, match="commondir"):
        Git(repo.path).run("worktree", "list", "--porcelain")
    applier = GitApplier(repo.path)
    assert applier.cleanup_stale() == []
    assert not dead.exists()
    assert len(repo.snapshot().worktrees) == 1
