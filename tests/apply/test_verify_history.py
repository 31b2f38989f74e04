"""verify explains every first-parent commit of main since the queue's first integration.

Each must be a mergegate merge of exactly one integrated candidate, or an
outside move an operator acknowledged. Real repositories, real git merges.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mergegate.apply import GitApplier
from mergegate.apply.audit import repository_violations
from mergegate.apply.testing import TestRepo as Repo
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine, State

from .conftest import MakeRepo

REF = "refs/heads/main"
_ME = ("-c", "user.name=Human", "-c", "user.email=human@example.com")


@pytest.fixture
def work(make_repo: MakeRepo) -> Repo:
    """A repository with a checkout (of ``work``, not main) and one commit on main."""
    r = make_repo(bare=False)
    base = r.commit("refs/heads/main", None, {"a": "a\n"}, message="before the queue")
    r.git("update-ref", "refs/heads/work", base)
    r.git("checkout", "-q", "work")
    return r


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh SQLite store."""
    opened = SQLiteStore(tmp_path / "db.sqlite3")
    yield opened
    opened.close()


def _integrate(repo: Repo, store: SQLiteStore, slug: str) -> str:
    """Submit a new branch ``slug`` off main and apply it; the candidate's sha."""
    sha = repo.commit(f"refs/heads/{slug}", repo.main(), {slug: f"{slug}\n"})
    engine = Engine(store)
    engine.submit(CandidateKey(slug, slug, sha))
    assert engine.apply(slug, GitApplier(repo.path), owner="t").state is State.INTEGRATED
    return sha


def _found(repo: Repo, store: SQLiteStore, acknowledged: tuple[str, ...] = ()) -> list[str]:
    violations = repository_violations(
        GitApplier(repo.path).git, REF, store.candidates(), store.log(), acknowledged
    )
    return [str(v) for v in violations]


def _on_main(repo: Repo, *args: str) -> str:
    """Run a git command with main checked out, as a person would; main's new sha."""
    repo.git("checkout", "-q", "main")
    try:
        repo.git(*_ME, *args)
    finally:
        repo.git("checkout", "-q", "work")
    return repo.main()


def test_the_queues_merges_and_history_before_it_are_clean(work: Repo, store: SQLiteStore) -> None:
    """Two mergegate merges on top of older plain history: nothing to explain."""
    _integrate(work, store, "one")
    _integrate(work, store, "two")
    assert _found(work, store) == []


def test_a_manual_no_ff_merge_of_an_unqueued_branch_fails_until_acknowledged(
    work: Repo, store: SQLiteStore
) -> None:
    """git merge --no-ff of a branch the queue never saw is named, with the command to accept it."""
    _integrate(work, store, "one")
    side = work.commit("refs/heads/unqueued", work.main(), {"u": "u\n"})
    merge = _on_main(work, "merge", "-q", "--no-ff", "-m", "Merge branch 'unqueued'", "unqueued")
    [problem] = _found(work, store)
    assert problem.startswith(f"commit {merge}: a merge of {side[:12]} that moved main outside")
    assert f"run `mergegate acknowledge {merge} --why TEXT`" in problem
    # Acknowledged, and the queue's next merge on top of it: clean again.
    _integrate(work, store, "two")
    assert _found(work, store, (merge,)) == []


def test_a_fast_forward_to_a_human_merge_off_a_side_branch_fails(
    work: Repo, store: SQLiteStore
) -> None:
    """main fast-forwarded onto a merge whose first parent is a side branch: the side is named."""
    _integrate(work, store, "one")
    fork = work.git("rev-parse", "main~1")
    side = work.commit("refs/heads/side", fork, {"s": "s\n"}, message="side work")
    work.git("checkout", "-q", "side")
    work.git(*_ME, "merge", "-q", "--no-ff", "-m", "Merge main into side", "main")
    human = work.git("rev-parse", "HEAD")
    work.git("checkout", "-q", "work")
    work.git("update-ref", REF, human)  # a fast-forward: main's old tip is an ancestor
    found = _found(work, store)
    assert any(p.startswith(f"commit {side}: a commit that moved main outside") for p in found)
    assert any(p.startswith(f"commit {human}: a merge of ") for p in found)
    assert any("reaches only through a side parent" in p for p in found), found


def test_a_plain_commit_quoting_a_candidate_line_is_not_a_merge_of_nothing(
    work: Repo, store: SQLiteStore
) -> None:
    """A commit that quotes 'Candidate: <sha>' in its body is a plain outside commit, no more."""
    sha = _integrate(work, store, "one")
    quoted = work.commit(
        REF,
        work.main(),
        {"notes": "n\n"},
        message=f"Document the merge\n\nThe merge said:\nCandidate: {sha}\n\nSee the log.\n",
    )
    [problem] = _found(work, store)
    assert problem.startswith(f"commit {quoted}: a commit that moved main outside the queue")
    assert "merges nothing" not in problem


def test_a_commit_before_the_first_integration_is_not_the_queues(
    work: Repo, store: SQLiteStore
) -> None:
    """Plain history before the queue's first merge needs no acknowledgement; after it, it does."""
    before = work.commit(REF, work.main(), {"b": "b\n"}, message="still before")
    _integrate(work, store, "one")
    after = work.commit(REF, work.main(), {"c": "c\n"}, message="hotfix straight on main")
    found = _found(work, store)
    assert [p.split(":")[0] for p in found] == [f"commit {after}"]
    assert before not in " ".join(found)


def test_a_store_with_nothing_integrated_explains_nothing_and_asks_nothing(
    work: Repo, store: SQLiteStore
) -> None:
    """Before any integration, plain history is not reported; a forged merge still is."""
    work.commit(REF, work.main(), {"b": "b\n"})
    assert _found(work, store) == []
    main = work.main()
    tree = work.git("rev-parse", f"{main}^{{tree}}")
    stray = work.commit("refs/heads/stray", main, {"s": "s\n"})
    forged = work.git(
        "commit-tree", "-p", main, "-p", stray, "-m", f"x\n\nCandidate: {stray}", tree
    )
    work.git("update-ref", REF, forged)
    [problem] = _found(work, store)
    assert (
        problem
        == f"commit {forged}: mergegate merge of {stray}, but no integrated candidate has it"
    )


def test_a_merge_naming_two_candidates_is_named(work: Repo, store: SQLiteStore) -> None:
    """A mergegate merge names exactly one candidate: two trailers are a violation."""
    sha = _integrate(work, store, "one")
    main = work.main()
    tree = work.git("rev-parse", f"{main}^{{tree}}")
    two = work.git(
        "commit-tree",
        "-p",
        main,
        "-p",
        sha,
        "-m",
        f"x\n\nCandidate: {sha}\nCandidate: {main}",
        tree,
    )
    work.git("update-ref", REF, two)
    [problem] = _found(work, store)
    assert problem.startswith(f"commit {two}: names 2 candidates")


def test_verify_is_deterministic(work: Repo, store: SQLiteStore) -> None:
    """The same repository and store give the same list, in the same order."""
    _integrate(work, store, "one")
    work.commit(REF, work.main(), {"x": "x\n"})
    work.commit(REF, work.main(), {"y": "y\n"})
    first = _found(work, store)
    assert len(first) == 2
    assert first == _found(work, store)
