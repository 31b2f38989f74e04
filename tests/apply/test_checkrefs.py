"""Check refs on a real git daemon: published, retracted, and only stale ones pruned."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mergegate.apply.checkrefs import (
    CheckRef,
    check_ref,
    listed,
    prune_check_refs,
    publish,
    retract,
    stale_check_refs,
)
from mergegate.apply.git import Git
from mergegate.statemachine import InvalidInput

from ..gitrepo import git, git_env, init_repo
from ..gitserver import GitServer

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=10)


def _site(server: GitServer, tmp_path: Path) -> tuple[Path, Path, Git]:
    """A served repository and a bare integration clone with remote ``origin``."""
    seed = init_repo(tmp_path / "seed")
    (seed / "a").write_text("a\n")
    git(seed, "add", "a")
    git(seed, "commit", "-qm", "a")
    served = server.repo(seed)
    integ = tmp_path / "integ.git"
    git(tmp_path, "clone", "-q", "--bare", server.url(served), str(integ))
    return served, integ, Git(integ)


def _commit(integ: Path, message: str, when: datetime) -> str:
    """A commit on main's tree made at ``when`` (a merge commit mergegate built then)."""
    stamp = when.isoformat()
    env = dict(git_env(), GIT_COMMITTER_DATE=stamp, GIT_AUTHOR_DATE=stamp)
    done = subprocess.run(
        ["git", "commit-tree", "-p", "main", "-m", message, "main^{tree}"],
        cwd=integ,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _served_refs(served: Path) -> list[str]:
    out = git(served, "for-each-ref", "--format=%(refname)", "refs/mergegate/checks/")
    return out.split() if out else []


def test_publish_then_retract_leaves_no_ref_on_the_server(
    git_server: GitServer, tmp_path: Path
) -> None:
    """publish pushes refs/mergegate/checks/<sha>; retract deletes it again."""
    served, integ, g = _site(git_server, tmp_path)
    sha = _commit(integ, "merge", NOW)
    ref = publish(g, "origin", sha, timeout=30)
    assert ref == f"refs/mergegate/checks/{sha}"
    assert git(served, "rev-parse", ref) == sha
    assert listed(g, "origin", timeout=30) == [CheckRef(ref, sha)]
    retract(g, "origin", [ref], timeout=30)
    assert _served_refs(served) == []


def test_only_refs_nobody_can_need_are_pruned(git_server: GitServer, tmp_path: Path) -> None:
    """Open builds, recent builds and a young unrecorded push are kept; the rest go in one push."""
    served, integ, g = _site(git_server, tmp_path)
    old = NOW - 2 * GRACE
    shas = {
        name: _commit(integ, name, when)
        for name, when in [
            ("open", old),
            ("finished-long-ago", old),
            ("finished-just-now", old),
            ("unrecorded-old", old),
            ("unrecorded-young", NOW - GRACE / 2),
        ]
    }
    for sha in shas.values():
        publish(g, "origin", sha, timeout=30)
    # Pushed by another host: not in this clone, so its age is unknown.
    elsewhere = "e" * 40
    git(
        served, "update-ref", f"refs/mergegate/checks/{elsewhere}", git(served, "rev-parse", "main")
    )
    store = {
        shas["open"]: (True, old),
        shas["finished-long-ago"]: (False, old),
        shas["finished-just-now"]: (False, NOW - GRACE / 2),
    }

    def activity(sha: str) -> tuple[bool, datetime | None]:
        return store.get(sha, (False, None))

    gone = prune_check_refs(g, "origin", activity, NOW, GRACE, timeout=30)
    assert sorted(gone) == sorted(
        check_ref(shas[n]) for n in ("finished-long-ago", "unrecorded-old")
    )
    left = _served_refs(served)
    assert sorted(left) == sorted(
        [check_ref(shas[n]) for n in ("open", "finished-just-now", "unrecorded-young")]
        + [f"refs/mergegate/checks/{elsewhere}"]
    )
    # A second sweep finds nothing more to delete.
    assert prune_check_refs(g, "origin", activity, NOW, GRACE, timeout=30) == []


def test_stale_check_refs_reads_nothing_but_the_store_for_recorded_builds(
    tmp_path: Path,
) -> None:
    """A ref with a recorded build is judged by the store alone (no git object needed)."""
    g = Git(init_repo(tmp_path / "r"))
    ref = CheckRef(check_ref("a" * 40), "a" * 40)
    assert stale_check_refs(g, [ref], lambda _s: (False, NOW - 2 * GRACE), NOW, GRACE) == [ref]
    assert stale_check_refs(g, [ref], lambda _s: (True, NOW - 2 * GRACE), NOW, GRACE) == []
    assert stale_check_refs(g, [ref], lambda _s: (False, None), NOW, GRACE) == []


@pytest.mark.parametrize(
    "ref",
    ["refs/heads/main", "refs/mergegate/fence", "refs/mergegate/checks/../../heads/main"],
)
def test_retract_refuses_anything_but_a_check_ref_and_pushes_nothing(
    git_server: GitServer, tmp_path: Path, ref: str
) -> None:
    """Hostile or foreign refs: a one-line InvalidInput, and main is still on the server."""
    served, _integ, g = _site(git_server, tmp_path)
    main = git(served, "rev-parse", "refs/heads/main")
    with pytest.raises(InvalidInput, match="only refs under refs/mergegate/checks/"):
        retract(g, "origin", [ref], timeout=30)
    assert git(served, "rev-parse", "refs/heads/main") == main


@pytest.mark.parametrize("commit", ["main", "../x", "A" * 40, "a" * 39, ""])
def test_check_ref_takes_only_a_full_object_id(commit: str) -> None:
    """A branch name, a path or a short or upper-case sha is refused."""
    with pytest.raises(InvalidInput, match="full hex object id"):
        check_ref(commit)
