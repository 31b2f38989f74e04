"""The fence, from outside: real ``mergegate`` processes, real hooks that sleep, stalls and kills.

Each test builds a bare integration repository (and, where a remote is
involved, a bare remote it pushes to), runs ``mergegate apply`` in the
background and ``mergegate recover`` meanwhile, and checks that ``main`` (local
and remote) holds each candidate's merge at most once, only for an integrated
candidate, and that ``verify`` agrees.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest

from mergegate.apply import Identity
from mergegate.apply.git import Git
from mergegate.persistence import open_store

from ..procio import LiveOutput, wait_until

SLOW = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", MERGEGATE_ACTOR="tester")
    return env


@attrs.define
class Site:
    """An integration repository (with an optional remote), a store URL and the CLI on them."""

    root: Path
    url: str
    remote: Path | None
    make_commit: Callable[..., str]

    @property
    def repo(self) -> Path:
        return self.root / "integration.git"

    def git(self, *args: str, where: Path | None = None) -> str:
        return Git(where or self.repo, Identity("t", "t@x")).run(*args).text

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "mergegate.cli", "--repo", str(self.repo), "--db", self.url]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``mergegate ARGS`` to the end; no traceback may reach stderr."""
        done = subprocess.run(
            [*self.argv(), *args],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def background(self, *args: str) -> subprocess.Popen[str]:
        """Start ``mergegate ARGS`` in its own process group."""
        return subprocess.Popen(
            [*self.argv(), *args],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def candidate(self, slug: str, edits: dict[str, str | None]) -> str:
        """Commit ``edits`` on main as branch ``slug`` and submit it; return its sha."""
        main = self.git("rev-parse", "refs/heads/main")
        sha = self.make_commit(
            Git(self.repo, Identity("t", "t@x")), f"refs/heads/{slug}", main, edits
        )
        done = self.run("submit", slug, "--sha", sha, "--branch", slug)
        assert done.returncode == 0, done.stderr
        return sha

    def merges_of(self, sha: str, where: Path | None = None) -> list[str]:
        """The first-parent merges on main whose second parent is ``sha``."""
        lines = self.git("rev-list", "--first-parent", "--parents", "refs/heads/main", where=where)
        return [ln.split()[0] for ln in lines.split("\n") if ln.split()[2:] == [sha]]

    def state(self, slug: str) -> Any:
        done = self.run("--json", "show", slug)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["result"]["candidate"]["state"]

    def stored_state(self, slug: str) -> str:
        """The candidate's state, read from the store directly (no CLI start-up)."""
        store = open_store(self.url)
        try:
            candidate = store.candidate(slug)
            return "missing" if candidate is None else candidate.state.value
        finally:
            store.close()

    def leases(self) -> list[Any]:
        """Every lease in the store, read directly."""
        store = open_store(self.url)
        try:
            return store.leases()
        finally:
            store.close()

    def lease_expired(self) -> bool:
        """Whether a lease is stored and every one has expired (no heartbeat renewed it)."""
        leases = self.leases()
        return bool(leases) and all(lease.expires_at < datetime.now(UTC) for lease in leases)

    def verify(self) -> Any:
        done = self.run("--json", "verify")
        return json.loads(done.stdout)["result"]

    @property
    def lock(self) -> Path:
        return self.repo / "refs" / "heads" / "main.lock"


def _hook(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, SLOW])])
def site_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL: SQLite in the default run, PostgreSQL with the slow suite."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'store.sqlite3'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def make_site(tmp_path: Path, site_url: str, kit: Any) -> Callable[..., Site]:
    """Builds a site; ``remote=True`` makes ``origin`` a bare repository that it pushes to."""

    def make(*, lease_ttl: float = 1, remote: bool = False) -> Site:
        root = tmp_path / "site"
        origin = root / "origin.git" if remote else None
        seed = origin or root / "integration.git"
        seed.mkdir(parents=True)
        git = Git(seed, Identity("t", "t@x"))
        git.run("init", "-q", "--bare", "-b", "work")
        stream = (
            "commit refs/heads/main\nmark :1\ncommitter t <t@x> 1700000000 +0000\n"
            "data 5\nroot\nM 100644 inline README\ndata 7\nreadme\n\n"
        )
        git.run("fast-import", "--quiet", stdin=stream.encode())
        if origin is not None:
            subprocess.run(
                ["git", "clone", "-q", "--bare", str(origin), str(root / "integration.git")],
                env=_env(),
                check=True,
            )
        site = Site(root, site_url, origin, kit.make_commit)
        config = f"lease_ttl = {lease_ttl}\n" + ('remote = "origin"\n' if remote else "")
        (site.repo / "mergegate.toml").write_text(config)
        done = site.run("init")
        assert done.returncode == 0, done.stderr
        return site

    return make


def _wait_for(
    predicate: Callable[[], bool],
    what: str | Callable[[], str],
    proc: subprocess.Popen[str] | None = None,
    timeout: float = 20,
) -> None:
    alive = [_watch(proc)] if proc is not None else []
    wait_until(predicate, what, timeout, alive=alive)


_watched: dict[int, LiveOutput] = {}


def _watch(proc: subprocess.Popen[str]) -> LiveOutput:
    """The one reader of ``proc``'s pipes, made on first use."""
    if proc.pid not in _watched:
        _watched[proc.pid] = LiveOutput(proc)
    return _watched[proc.pid]


def _finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    live = _watch(proc)
    try:
        code, out, err = live.finish(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _watched.pop(proc.pid, None)
    assert "Traceback" not in err, err
    return code, out, err


def _stall_hook(path: Path, started: Path, release: Path) -> None:
    """A hook that says it started, then waits for ``release`` (at most 60 s).

    A hook sleeping a fixed time raced the test on a loaded machine: the push
    could end before recover ran, or recover could run before the push began.
    """
    _hook(
        path,
        f"touch {started}\n"
        f"i=0; while [ ! -e {release} ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done",
    )


def _follow_guidance(site: Site, slug: str) -> None:
    """What the guidance of an interrupted apply says: remediate, resume, apply again."""
    for args in (
        ("remediate", slug),
        ("resume", slug, "--force", "--why", "the apply was interrupted"),
        ("apply", slug),
    ):
        done = site.run(*args)
        assert done.returncode in (0, 3), (args, done.stderr)


def test_slow_push_outliving_the_lease_is_not_recovered_meanwhile(
    make_site: Callable[..., Site], tally: Counter[str]
) -> None:
    """A pre-receive that stalls past a 1 s lease: recover refuses, c1 integrates once."""
    site = make_site(remote=True)
    assert site.remote is not None
    c1 = site.candidate("c1", {"c1.txt": "one\n"})
    pushing, release = site.root / "pushing", site.root / "release"
    _stall_hook(site.remote / "hooks" / "pre-receive", pushing, release)
    mover = site.background("apply", "c1")
    # Recover runs while the push is in flight and after the lease expired: both
    # waited for as facts, not as times, so a loaded machine cannot reorder them.
    _wait_for(pushing.exists, "the pre-receive hook to start (the push in flight)", mover)
    _wait_for(site.lease_expired, lambda: f"the lease to expire: {site.leases()}", mover)
    recovered = site.run("recover")
    release.touch()
    code, _out, err = _finish(mover)
    tally["fence_recoveries_refused"] += recovered.returncode == 4
    assert recovered.returncode == 4, (recovered.stdout, recovered.stderr)
    assert "a move is in flight" in recovered.stderr
    assert len(recovered.stderr.strip().splitlines()) == 1
    assert code == 0, err
    assert site.state("c1") == "integrated"
    assert len(site.merges_of(c1)) == 1
    assert len(site.merges_of(c1, site.remote)) == 1
    assert site.verify()["ok"] is True


def test_reference_transaction_hook_does_not_run_inside_the_move(
    make_site: Callable[..., Site], tally: Counter[str]
) -> None:
    """A sleeping reference-transaction hook no longer stalls the move: one merge of c1."""
    site = make_site()
    c1 = site.candidate("c1", {"c1.txt": "one\n"})
    ran = site.root / "hook-ran"
    _hook(
        site.repo / "hooks" / "reference-transaction",
        f'if [ "$1" = prepared ]; then touch {ran}; sleep 3; fi',
    )
    mover = site.background("apply", "c1")
    time.sleep(2.5)
    site.run("recover")
    _code, _out, err = _finish(mover)
    if site.state("c1") == "blocked":
        _follow_guidance(site, "c1")
    tally["fence_hook_runs"] += ran.exists()
    assert not ran.exists(), "a repository hook ran inside mergegate's update-ref"
    assert site.state("c1") == "integrated", err
    assert len(site.merges_of(c1)) == 1
    assert site.verify()["ok"] is True


@SLOW
def test_stopped_mover_holding_main_is_waited_for(
    make_site: Callable[..., Site], tally: Counter[str]
) -> None:
    """A mover SIGSTOPped holding main: recover refuses, naming kill -CONT; then one merge."""
    site = make_site(remote=True)
    assert site.remote is not None
    c1 = site.candidate("c1", {"c1.txt": "one\n"})
    _hook(site.remote / "hooks" / "pre-receive", "sleep 1")
    mover = site.background("apply", "c1")
    try:
        _wait_for(site.lock.exists, f"{site.lock} (the mover holding main)", mover)
        os.kill(mover.pid, signal.SIGSTOP)
        # The stopped mover renews nothing: wait for its lease (1 s) to expire.
        _wait_for(site.lease_expired, lambda: f"the lease to expire: {site.leases()}")
        refused = [site.run("recover") for _ in range(2)]
        assert [r.returncode for r in refused] == [4, 4], [r.stderr for r in refused]
        assert all("a move is in flight" in r.stderr for r in refused)
        # It names the stopped process and the command that lets it finish.
        assert f"process {mover.pid} is stopped" in refused[0].stderr, refused[0].stderr
        printed = refused[0].stderr.split("`")[1]
        assert printed == f"kill -CONT {mover.pid}"
        assert site.lock.exists()
        assert site.state("c1") == "applying"
        subprocess.run(["bash", "-c", printed], check=True, timeout=30)
    finally:
        os.kill(mover.pid, signal.SIGCONT)
    code, _out, err = _finish(mover)
    tally["fence_stalls_survived"] += 1
    assert code == 0, err
    assert site.state("c1") == "integrated"
    assert len(site.merges_of(c1)) == 1
    assert len(site.merges_of(c1, site.remote)) == 1
    assert "no expired apply lease" in site.run("recover").stdout
    assert site.verify()["ok"] is True


@SLOW
def test_stale_main_lock_of_a_killed_mover_is_removed(
    make_site: Callable[..., Site], tally: Counter[str]
) -> None:
    """A mover killed with its git children leaves main.lock: recover removes it once safe."""
    site = make_site(remote=True)
    assert site.remote is not None
    c1 = site.candidate("c1", {"c1.txt": "one\n"})
    _hook(site.remote / "hooks" / "pre-receive", "sleep 30")
    mover = site.background("apply", "c1")
    _wait_for(site.lock.exists, f"{site.lock} (the mover holding main)", mover)
    # Each git runs in a group of its own (apply/git.py): killed with the mover's
    # group alone, the update-ref would see its stdin close and abort, leaving no
    # lock, and the path remote's receive-pack could still land the push. A
    # crashed host kills every process of the mover, first, so nothing lets go.
    tree = _descendants(mover.pid)
    assert any("update-ref" in cmd for _pid, cmd in tree), tree
    for pid, _cmd in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    os.killpg(mover.pid, signal.SIGKILL)
    _finish(mover)
    assert site.lock.exists()
    # The lease is still live, but its holder is a dead process on this host:
    # recover settles it and breaks the lock at once, as git's gc.pid rule would.
    late = site.run("--json", "recover")
    assert late.returncode == 0, late.stderr
    result = json.loads(late.stdout)["result"]
    assert result["stale_lock_removed"] == str(site.lock)
    # The mover's death is not c1's fault: requeued at its place, no follow-up.
    assert [o["candidate"]["state"] for o in result["recovered"]] == ["pending"]
    assert not site.lock.exists()
    tally["fence_stale_locks_removed"] += 1
    (site.remote / "hooks" / "pre-receive").unlink()
    applied = site.run("apply", "c1")
    assert applied.returncode == 0, applied.stderr
    assert site.state("c1") == "integrated"
    assert len(site.merges_of(c1)) == 1
    assert len(site.merges_of(c1, site.remote)) == 1
    assert site.verify()["ok"] is True


@SLOW
def test_a_mover_killed_with_its_group_lets_go_of_main(
    make_site: Callable[..., Site], tally: Counter[str]
) -> None:
    """kill -9 of the mover's group mid-push: its update-ref aborts, its push dies, main stays."""
    site = make_site(remote=True)
    assert site.remote is not None
    site.candidate("c1", {"c1.txt": "one\n"})
    _hook(site.remote / "hooks" / "pre-receive", "sleep 30")
    before = site.git("rev-parse", "refs/heads/main", where=site.remote)
    mover = site.background("apply", "c1")
    _wait_for(site.lock.exists, f"{site.lock} (the mover holding main)", mover)
    os.killpg(mover.pid, signal.SIGKILL)
    _finish(mover)
    _wait_for(lambda: not site.lock.exists(), f"{site.lock} let go by the aborting update-ref")
    late = site.run("--json", "recover")
    assert late.returncode == 0, late.stderr
    result = json.loads(late.stdout)["result"]
    assert result["stale_lock_removed"] is None, result
    # The push's server side outlives its client (a path remote's receive-pack, as
    # a real server's would): it may land. Recovery's fence decides, and agrees.
    [state] = [o["candidate"]["state"] for o in result["recovered"]]
    landed = site.git("rev-parse", "refs/heads/main", where=site.remote) != before
    assert state == ("integrated" if landed else "pending"), (state, landed)
    assert site.verify()["ok"] is True
    tally["fence_group_kills_let_go"] += 1


def _descendants(pid: int) -> list[tuple[int, str]]:
    """Every process under ``pid`` (children first), with its command line."""
    found: list[tuple[int, str]] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # it exited meanwhile
        return found
    for child in children:
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found.append((int(child), cmd))
        found.extend(_descendants(int(child)))
    return found


@SLOW
def test_verify_names_double_and_unexplained_merges(
    make_site: Callable[..., Site], tally: Counter[str]
) -> None:
    """verify --json names a second merge of c1 and a mergegate merge of a never-integrated c2."""
    site = make_site(lease_ttl=60)
    c1 = site.candidate("c1", {"c1.txt": "one\n"})
    c2 = site.candidate("c2", {"c2.txt": "two\n"})
    assert site.run("apply", "c1").returncode == 0
    assert site.verify()["ok"] is True
    forged = []
    for sha in (c1, c2):
        main = site.git("rev-parse", "refs/heads/main")
        tree = site.git("rev-parse", f"{main}^{{tree}}")
        message = f"mergegate: integrate forged\n\nCandidate: {sha}\n"
        commit = Git(site.repo, Identity("t", "t@x")).run(
            "commit-tree", "-p", main, "-p", sha, "-F", "-", tree, stdin=message.encode()
        )
        site.git("update-ref", "refs/heads/main", commit.text, main)
        forged.append(commit.text)
    done = site.run("--json", "verify")
    assert done.returncode == 1
    found = json.loads(done.stdout)["result"]["repository_violations"]
    tally["fence_verify_violations_named"] += len(found)
    assert [(v["commit"], v["candidate_sha"]) for v in found] == [
        (forged[0], c1),
        (forged[1], c2),
    ]
    assert "again" in found[0]["problem"]
    assert "no integrated candidate" in found[1]["problem"]
    text = site.run("verify")
    assert f"REPOSITORY commit {forged[0]}" in text.stdout
    assert len(text.stderr.strip().splitlines()) == 1
