"""Every sha is resolved once, at the door, through object ids only, to the full commit id.

Each test runs ``mergegate`` as a subprocess in an ordinary (non-bare) repository,
with no ``--repo`` and the default SQLite store, as an operator would.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from ..gitrepo import init_repo
from .conftest import Result, Scratch, _env, git


@attrs.frozen
class Repo:
    """An ordinary repository: main, and feat with commits A then B (the reviewed tip)."""

    path: Path
    a: str
    b: str
    other: str

    @property
    def db(self) -> Path:
        return self.path / ".git" / "mergegate" / "mergegate.sqlite3"

    def __call__(self, *args: str) -> Result:
        """Run ``mergegate ARGS`` in the repository; no traceback may reach stderr."""
        done = subprocess.run(
            [sys.executable, "-m", "mergegate.cli", *args],
            cwd=self.path,
            env=_env(),
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return Result(done.returncode, done.stdout, done.stderr)

    def state(self) -> tuple[object, bytes]:
        """What the store holds: ``list --json``'s candidates and the SQLite file's bytes."""
        listed = self("--json", "list")
        assert listed.code == 0, listed.stderr
        # Less what list reads from the clock (time in state, ETA): not what the store holds.
        stored = [
            {k: v for k, v in row.items() if k not in _CLOCK}
            for row in listed.doc["result"]["candidates"]
        ]
        return stored, self.db.read_bytes()


def _commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text, encoding="utf-8")
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", f"edit {name}")
    return git(repo, "rev-parse", "HEAD")


_CLOCK = frozenset({"elapsed_seconds", "eta", "eta_seconds"})


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A non-bare repository on branch ``work`` (so main is not checked out), store initialized."""
    path = tmp_path / "repo"
    init_repo(path)
    _commit(path, "README.md", "# project\n")
    git(path, "checkout", "-q", "-b", "feat")
    a = _commit(path, "feat.txt", "first\n")
    b = _commit(path, "feat.txt", "second, reviewed\n")
    git(path, "checkout", "-q", "-b", "other", "main")
    other = _commit(path, "other.txt", "other\n")
    git(path, "checkout", "-q", "-b", "work", "main")
    made = Repo(path, a, b, other)
    assert made("init").code == 0
    # One candidate already queued, so "unchanged" means more than "still empty".
    assert made("submit", "other", "--sha", other).code == 0
    return made


def _refused(repo: Repo, *args: str) -> Result:
    """Run a command that must be refused as bad input: exit 2, one line, nothing written."""
    before = repo.state()
    r = repo(*args)
    assert r.code == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("mergegate: error: ")
    assert r.stderr.count("\n") == 1, r.stderr
    assert r.stdout == ""
    assert repo.state() == before
    return r


def test_tag_named_like_the_abbreviation_does_not_change_the_commit(repo: Repo) -> None:
    """A tag named like B's 7-hex abbreviation on A: submit/apply still integrate B, by full id."""
    git(repo.path, "tag", repo.b[:7], repo.a)
    assert git(repo.path, "rev-parse", repo.b[:7]) == repo.a  # git itself prefers the ref
    submitted = repo("--json", "submit", "feat", "--sha", repo.b[:7])
    assert submitted.code == 0, submitted.stderr
    applied = repo("--json", "apply", "feat")
    assert applied.code == 0, applied.stderr
    assert git(repo.path, "rev-parse", "main^2") == repo.b
    assert submitted.doc["result"]["candidate"]["sha"] == repo.b
    shown = repo("--json", "show", "feat")
    assert shown.doc["result"]["candidate"]["sha"] == repo.b
    assert shown.doc["result"]["candidate"]["state"] == "integrated"


def test_submit_without_sha_or_branch_takes_the_branch_tip(repo: Repo) -> None:
    """``submit feat`` queues branch feat at its tip, stored as the full commit id."""
    r = repo("--json", "submit", "feat")
    assert r.code == 0, r.stderr
    candidate = r.doc["result"]["candidate"]
    assert (candidate["branch"], candidate["sha"]) == ("feat", repo.b)


def test_submit_accepts_an_older_commit_of_the_branch(repo: Repo) -> None:
    """A commit contained in the branch (not its tip) is accepted and stored in full."""
    r = repo("--json", "submit", "early", "--branch", "feat", "--sha", repo.a[:9].upper())
    assert r.code == 0, r.stderr
    assert r.doc["result"]["candidate"]["sha"] == repo.a


def _blob_sharing_prefix(prefix: str) -> bytes:
    """Content of a blob whose id starts with ``prefix`` (found by counting; deterministic)."""
    n = 0
    while True:
        body = f"collision {n}\n".encode()
        if (
            hashlib.sha1(b"blob %d\0" % len(body) + body, usedforsecurity=False)
            .hexdigest()
            .startswith(prefix)
        ):
            return body
        n += 1


def test_ambiguous_abbreviation_is_refused(repo: Repo) -> None:
    """Two objects share B's first 4 hex digits: exit 2, both listed, nothing written."""
    prefix = repo.b[:4]
    body = _blob_sharing_prefix(prefix)
    blob = (
        subprocess.run(
            ["git", "hash-object", "-w", "--stdin"],
            cwd=repo.path,
            input=body,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    found = git(repo.path, "rev-parse", f"--disambiguate={prefix}").split()
    assert sorted(found) == sorted([repo.b, blob])
    r = _refused(repo, "submit", "feat", "--sha", prefix)
    assert "ambiguous, 2 objects start with it" in r.stderr
    assert f"{repo.b} commit" in r.stderr
    assert f"{blob} blob" in r.stderr
    doc = repo("--json", "submit", "feat", "--sha", prefix).doc
    assert doc["error"]["type"] == "ambiguous_sha"
    # One more digit tells them apart, and it is B that is stored.
    longer = next(n for n in range(5, 41) if not blob.startswith(repo.b[:n]))
    ok = repo("--json", "submit", "feat", "--sha", repo.b[:longer])
    assert ok.doc["result"]["candidate"]["sha"] == repo.b


def test_unknown_sha_is_refused(repo: Repo) -> None:
    """A sha no object has: exit 2, one line, nothing written."""
    unknown = next(
        p
        for p in ("deadbeef", "feedface", "0badc0de")
        if not git(repo.path, "rev-parse", f"--disambiguate={p}")
    )
    r = _refused(repo, "submit", "feat", "--sha", unknown)
    assert "has this id" in r.stderr
    full = "0" * 39 + "1"
    _refused(repo, "submit", "feat", "--sha", full)


@pytest.mark.parametrize("what", ["tree", "blob"])
def test_non_commit_is_refused(repo: Repo, what: str) -> None:
    """A tree or blob id, full or abbreviated: exit 2, naming the type, nothing written."""
    oid = git(
        repo.path, "rev-parse", f"{repo.b}^{{tree}}" if what == "tree" else f"{repo.b}:feat.txt"
    )
    for given in (oid, oid[:10]):
        r = _refused(repo, "submit", "feat", "--sha", given)
        assert f"it names a {what} ({oid}), not a commit" in r.stderr


def test_sha_not_in_the_branch_is_refused(repo: Repo) -> None:
    """A commit of another branch: exit 2, naming the branch and its tip, nothing written."""
    r = _refused(repo, "submit", "feat", "--sha", repo.other[:7])
    assert f"not contained in branch 'feat' (at {repo.b[:12]})" in r.stderr


def test_branch_that_does_not_exist_is_refused(repo: Repo) -> None:
    """A missing branch, with or without --sha: exit 2, nothing written."""
    r = _refused(repo, "submit", "nosuch")
    assert "no branch refs/heads/nosuch" in r.stderr
    _refused(repo, "submit", "x", "--branch", "nosuch", "--sha", repo.b)


def test_branch_name_is_never_guessed_from_tags(repo: Repo) -> None:
    """A tag ``refs/tags/refs/heads/ghost`` does not make branch ``ghost`` exist."""
    git(repo.path, "tag", "refs/heads/ghost", repo.b)
    _refused(repo, "submit", "ghost")


@pytest.mark.parametrize("bad", ["abc", "xyz1234", "-h", "a" * 65, " " + "a" * 40])
def test_malformed_sha_is_refused(repo: Repo, bad: str) -> None:
    """Text that is not 4 to 64 hex digits: exit 2, nothing written."""
    r = _refused(repo, "submit", "feat", "--sha", bad)
    assert "4 to 64 hex digits" in r.stderr


def test_list_and_show_print_one_width(repo: Repo) -> None:
    """Human output shows 12 hex digits of every sha; --json shows the full id."""
    assert repo("submit", "feat", "--sha", repo.b[:7]).code == 0
    listed = repo("list").stdout
    assert repo.b[:12] in listed
    assert repo.b[:13] not in listed
    shown = repo("show", "feat").stdout
    assert f"sha:        {repo.b[:12]}\n" in shown
    assert f"feat@{repo.b[:13]}" not in shown
    doc = json.loads(repo("--json", "list").stdout)
    assert {c["sha"] for c in doc["result"]["candidates"]} == {repo.b, repo.other}


def test_resume_resolves_its_sha_the_same_way(blocked: Scratch) -> None:
    """resume --sha: an abbreviation (shadowed by a tag) becomes the full id of the branch's fix."""
    blocked("remediate", "new-greeting")
    fixed = blocked.commit("new-greeting", "new-greeting", "Fix", {"greeting.txt": "Hi.\n"})
    git(blocked.bare, "tag", fixed[:7], blocked.shas["main"])
    before = blocked.snapshot()
    elsewhere = _refused_scratch(blocked, "resume", "new-greeting", "--sha", blocked.shas["other"])
    assert "not contained in branch 'new-greeting'" in elsewhere.stderr
    assert blocked.snapshot() == before
    r = blocked("--json", "resume", "new-greeting", "--sha", fixed[:7], "--force", "--why", "t")
    assert r.code == 0, r.stderr
    assert r.doc["result"]["candidate"]["sha"] == fixed


def _refused_scratch(s: Scratch, *args: str) -> Result:
    r = s(*args)
    assert r.code == 2, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1
    return r


def test_integrate_main_sha_is_resolved_through_objects_only(blocked: Scratch) -> None:
    """integrate --main-sha: a tag named like main's abbreviation does not redirect it."""
    main = blocked.main()
    git(blocked.bare, "tag", main[:8], blocked.shas["other"])
    before = blocked.snapshot()
    r = blocked("integrate", "add-docs", "--main-sha", main[:8])
    # add-docs is integrated already: the sha resolved to main itself, so the
    # refusal is the state machine's (exit 4), not "main points elsewhere" (exit 2).
    assert r.code == 4, r.stderr
    assert blocked.snapshot() == before
