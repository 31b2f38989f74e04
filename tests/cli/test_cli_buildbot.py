"""Checks on a real Buildbot: `mergegate run` pushes refs/mergegate/checks/*, forces builds, gates.

One master (REST on 127.0.0.1) and two workers serve the whole session; a git
daemon serves the remote the integrator pushes to and the workers fetch from.
Every candidate adds ``checks.d/<slug>.sh``; main's ``check.sh`` runs them all,
so the merged tree decides: pass, fail, sleep, or fail once (flaky).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..buildbotserver import BuildbotMaster, GitDaemon, Worker, wait_for
from .conftest import MakeScratch, Scratch, _env, git, states

pytestmark = pytest.mark.buildbot

CHECK_SH = 'for f in checks.d/*.sh; do [ -e "$f" ] || continue; sh "$f" || exit 1; done\n'
PASS = "echo ok\n"
FAIL = 'echo "collected 3 items"; echo "E   AssertionError: totals differ (1 != 2)"; exit 1\n'
SLOW = "sleep 60\n"


def flaky(name: str) -> str:
    """A script that fails on its first run and passes on every later one."""
    return (
        f'if [ -e "$FLAKY_DIR/{name}" ]; then echo passed now; exit 0; fi\n'
        f'touch "$FLAKY_DIR/{name}"; echo "first run fails"; exit 1\n'
    )


class CI:
    """The session's Buildbot master, its workers and the git daemon."""

    def __init__(self, base: Path) -> None:
        self.base = base
        (base / "served").mkdir()
        self.git = GitDaemon(base / "served")
        self.master = BuildbotMaster(
            base, {"checks": ["w1", "w2"], "lonely": ["absent"]}, ["w1", "w2", "absent"]
        )
        self.workers = {name: Worker(self.master, base, name) for name in ("w1", "w2")}
        self.served = 0

    def start(self) -> CI:
        self.git.start()
        self.master.start()
        for worker in self.workers.values():
            worker.start()
        return self

    def ensure_workers(self) -> None:
        for worker in self.workers.values():
            if not worker.alive:
                worker.start()

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.master.stop()
        self.git.stop()

    def builds(self) -> list[dict[str, Any]]:
        return list(self.master.get("builds?order=buildid")["builds"])

    def build_of(self, merge: str) -> list[dict[str, Any]]:
        """Buildbot's builds whose source stamp is the merge commit ``merge``."""
        found = []
        for build in self.builds():
            request = self.master.get(f"buildrequests/{build['buildrequestid']}")
            bsid = request["buildrequests"][0]["buildsetid"]
            stamps = self.master.get(f"buildsets/{bsid}")["buildsets"][0]["sourcestamps"]
            if any(s["revision"] == merge for s in stamps):
                found.append(build)
        return found


@pytest.fixture(scope="session")
def ci(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CI]:
    """One Buildbot master, two workers and a git daemon for the session; stopped at its end."""
    running = CI(tmp_path_factory.mktemp("buildbot")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def bb(ci: CI) -> CI:
    """The session's CI with both workers connected (a test may have killed one)."""
    ci.ensure_workers()
    return ci


def _setup(make_scratch: MakeScratch, ci: CI, **toml: str) -> Scratch:
    """A ready scratch whose main has check.sh, pushed to a served remote ``origin``."""
    s = make_scratch("ready")
    s.commit("main", "main", "check script", {"check.sh": CHECK_SH})
    ci.served += 1
    name = f"r{ci.served}.git"
    git(ci.git.base, "clone", "-q", "--bare", str(s.bare), name)
    git(s.bare, "remote", "add", "origin", ci.git.url(name))
    builders = toml.get("builders", '["checks"]')
    extra = toml.get("extra", "")
    (s.bare / "mergegate.toml").write_text(
        f'remote = "origin"\n\n[buildbot]\nurl = "{ci.master.url}"\nbuilders = {builders}\n'
        f"poll = 0.2\n{extra}"
    )
    return s


def _candidate(s: Scratch, slug: str, script: str) -> str:
    sha = s.commit(slug, "main", f"{slug}", {f"checks.d/{slug}.sh": script})
    assert s("submit", slug).code == 0
    return sha


def _said(done: Any, ci: CI) -> str:
    """What ``run`` printed, and the master's logs around it: a failure explains itself."""
    return f"{done.stdout}{done.stderr}\n{ci.master.tail()}"


def _builds_table(s: Scratch) -> list[dict[str, Any]]:
    with sqlite3.connect(s.db) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM check_builds ORDER BY id")]
    conn.close()
    return rows


def _served_main(ci: CI, s: Scratch) -> str:
    url = git(s.bare, "remote", "get-url", "origin")
    return git(ci.git.base / url.rsplit("/", 1)[1], "rev-parse", "refs/heads/main")


def _check_refs(ci: CI, s: Scratch) -> list[str]:
    """The refs under refs/mergegate/checks/ on the served remote."""
    served = ci.git.base / git(s.bare, "remote", "get-url", "origin").rsplit("/", 1)[1]
    out = git(served, "for-each-ref", "--format=%(refname)", "refs/mergegate/checks/")
    return out.split() if out else []


def test_run_prunes_the_check_refs_a_killed_integrator_left(
    make_scratch: MakeScratch, bb: CI
) -> None:
    """A leftover check ref with no open build, older than the lease, is deleted as run starts."""
    s = _setup(make_scratch, bb)
    served = bb.git.base / git(s.bare, "remote", "get-url", "origin").rsplit("/", 1)[1]
    main = git(served, "rev-parse", "refs/heads/main")
    # What a SIGKILL between the push and the trigger leaves: a ref, no build row
    # (the commit is months old: the tests' fixed git dates).
    left = f"refs/mergegate/checks/{main}"
    git(served, "update-ref", left, main)
    done = s("run", "--once")
    assert done.code == 0, _said(done, bb)
    assert f"pruned 1 stale check refs ({left}, ...)" in done.stdout + done.stderr
    assert _check_refs(bb, s) == []


def test_a_passing_build_integrates_and_main_moves_on_the_remote(
    make_scratch: MakeScratch, bb: CI
) -> None:
    """Pass: the merge is pushed as refs/mergegate/checks/<sha>, built, then main moves there."""
    s = _setup(make_scratch, bb)
    _candidate(s, "good", PASS)
    done = s("run", "--once")
    assert done.code == 0, _said(done, bb)
    assert states(s) == {"good": "integrated"}
    merge = s.main()
    assert _served_main(bb, s) == merge
    built = bb.build_of(merge)
    assert [b["results"] for b in built] == [0], built
    rows = _builds_table(s)
    assert [(r["check_name"], r["state"], r["merge_sha"]) for r in rows] == [
        ("checks", "passed", merge)
    ]
    # Built from refs/mergegate/checks/<merge>, which is retracted once the verdict is in.
    assert _check_refs(bb, s) == []


def test_a_failing_build_blocks_with_its_url_step_and_log(
    make_scratch: MakeScratch, bb: CI
) -> None:
    """Fail: blocked checks_failed; evidence and guidance name the build URL, the step, the log."""
    s = _setup(make_scratch, bb)
    _candidate(s, "bad", FAIL)
    main = s.main()
    done = s("run", "--once")
    assert done.code == 3, _said(done, bb)
    assert states(s) == {"bad": "blocked"}
    assert s.main() == main == _served_main(bb, s)
    shown = s("--json", "show", "bad")
    assert shown.code == 0, shown.stderr
    report = shown.doc["result"]["latest_evidence"]["report"]
    assert report["reason"] == "checks_failed"
    (check,) = report["evidence"]["checks"]
    assert check["name"] == "checks"
    assert check["step"] == "check"
    assert check["url"].startswith(f"{bb.master.url}#/builders/")
    assert "E   AssertionError: totals differ (1 != 2)" in check["output_tail"]
    guidance = s("show", "bad").stdout
    assert f"checks (exit 2, step 'check', build {check['url']})" in guidance


def test_no_worker_waits_out_the_start_deadline_then_blocks_timed_out(
    make_scratch: MakeScratch, bb: CI
) -> None:
    """No worker: the request is cancelled at the start deadline; checks_timed_out names it."""
    s = _setup(make_scratch, bb, builders='["lonely"]', extra="start_timeout = 3\n")
    _candidate(s, "stuck", PASS)
    done = s("run", "--once")
    assert done.code == 3, _said(done, bb)
    assert states(s) == {"stuck": "blocked"}
    report = s("--json", "show", "stuck").doc["result"]["latest_evidence"]["report"]
    assert report["reason"] == "checks_timed_out"
    (check,) = report["evidence"]["checks"]
    assert check["name"] == "lonely"
    assert check["timed_out"] is True
    assert "no worker started it within 3s" in check["output_tail"]
    (row,) = _builds_table(s)
    assert row["state"] == "timed_out"
    request = bb.master.get(f"buildrequests/{row['build_id']}")["buildrequests"][0]
    assert (request["complete"], request["results"]) == (True, 6), request
    guidance = s("show", "stuck").stdout
    assert "checks_timed_out" in guidance
    assert "lonely (timed out" in guidance


def test_a_flaky_check_passes_on_retry_and_is_recorded_as_flaky(
    make_scratch: MakeScratch, bb: CI
) -> None:
    """Flaky: failed, retried (logged), passed; integrated; history shows both builds, counted."""
    s = _setup(make_scratch, bb, extra="retries = 1\n")
    _candidate(s, "wobbly", flaky(f"wobbly-{bb.served}"))
    done = s("run", "--once")
    assert done.code == 0, _said(done, bb)
    assert states(s) == {"wobbly": "integrated"}
    rows = _builds_table(s)
    assert [(r["attempt"], r["state"]) for r in rows] == [(1, "failed"), (2, "passed")]
    assert rows[0]["merge_sha"] == rows[1]["merge_sha"] == s.main()
    history = s("history", "wobbly").stdout
    assert "flaky: checks failed then passed" in history, history
    assert rows[0]["url"] in history
    shown = s("--json", "show", "wobbly").doc["result"]
    assert shown["flaky"] == [
        {
            "check": "checks",
            "merge_sha": s.main(),
            "attempts": [
                {"attempt": 1, "state": "failed", "exit_code": 2, "url": rows[0]["url"]},
                {"attempt": 2, "state": "passed", "exit_code": 0, "url": rows[1]["url"]},
            ],
        }
    ]
    assert s("flaky").stdout == "checks: 1\n"


def _run(s: Scratch, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(s.bare), *args],
        cwd=s.root,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the integrator's process group, as a crash would; close its pipes."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def _finish(proc: subprocess.Popen[str], timeout: float, bb: CI) -> tuple[str, str]:
    """Wait for ``proc``; on a timeout kill it, fail with its output and Buildbot's state."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        state = {
            "builds": bb.builds(),
            "requests": bb.master.get("buildrequests")["buildrequests"],
            "workers": bb.master.get("workers")["workers"],
        }
        raise AssertionError(
            f"mergegate run did not finish in {timeout:g}s:\n{out}\n{err}\nBuildbot: {state}"
        ) from None


def _running_build(bb: CI, s: Scratch) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        rows = _builds_table(s) if s.db.exists() else []
        for row in rows:
            builds = bb.master.get(f"buildrequests/{row['build_id']}/builds")["builds"]
            if not builds or builds[-1]["complete"]:
                continue
            steps = bb.master.get(f"builds/{builds[-1]['buildid']}/steps")["steps"]
            if any(st["name"] == "check" and st["started_at"] for st in steps):
                return {**row, "build": builds[-1]}
        return None

    found: dict[str, Any] = wait_for(
        "a build recorded in check_builds running its check step", probe, 60, 0.2
    )
    return found


@pytest.mark.slow
def test_a_worker_killed_mid_build_is_retried_not_blocked(
    make_scratch: MakeScratch, bb: CI
) -> None:
    """Kill the worker running the build: Buildbot retries it on the other one; it integrates."""
    s = _setup(make_scratch, bb)
    _candidate(s, "survivor", "sleep 4; echo done\n")
    proc = _run(s, "run", "--once")
    try:
        running = _running_build(bb, s)
        workerid = running["build"]["workerid"]
        name = bb.master.get(f"workers/{workerid}")["workers"][0]["name"]
        bb.workers[name].kill()
        out, err = _finish(proc, 120, bb)
    finally:
        if proc.poll() is None:
            _kill(proc)
    assert proc.returncode == 0, f"{out}{err}\n{bb.master.tail()}"
    assert states(s) == {"survivor": "integrated"}
    builds = bb.master.get(f"buildrequests/{running['build_id']}/builds")["builds"]
    assert [b["results"] for b in builds] == [5, 0], builds
    assert [r["state"] for r in _builds_table(s)] == ["passed"]


@pytest.mark.slow
def test_a_restarted_integrator_resumes_waiting_on_the_stored_build(
    make_scratch: MakeScratch, bb: CI
) -> None:
    """SIGKILL the integrator mid-build; the next run waits on the same build, triggers none."""
    s = _setup(make_scratch, bb)
    _candidate(s, "patient", "sleep 5; echo done\n")
    proc = _run(s, "run", "--once", "--concurrency", "2")
    try:
        running = _running_build(bb, s)
    finally:
        _kill(proc)
    assert _check_refs(bb, s) == [f"refs/mergegate/checks/{running['merge_sha']}"]
    before = len(bb.builds())
    done = s("run", "--once", "--concurrency", "2")
    assert done.code == 0, _said(done, bb)
    assert states(s) == {"patient": "integrated"}
    assert _check_refs(bb, s) == [], "the resumed build's ref was left on the remote"
    assert len(bb.builds()) == before, "the restarted integrator triggered a new build"
    rows = _builds_table(s)
    assert [(r["build_id"], r["state"]) for r in rows] == [(running["build_id"], "passed")]
    assert s.main() == running["merge_sha"]


@pytest.mark.slow
def test_superseding_a_candidate_cancels_its_build(make_scratch: MakeScratch, bb: CI) -> None:
    """A candidate whose integrator died mid-build, superseded: its open build is cancelled."""
    s = _setup(make_scratch, bb)
    _candidate(s, "moving", SLOW)
    proc = _run(s, "run", "--once", "--concurrency", "2")
    try:
        running = _running_build(bb, s)
    finally:
        _kill(proc)
    assert s("recover").code == 0
    assert states(s) == {"moving": "pending"}
    s.commit("moving", "moving", "faster", {"checks.d/moving.sh": PASS})
    done = s("submit", "moving")
    assert done.code == 0, done.stderr
    build = wait_for(
        "the superseded build to end",
        lambda: next(
            (
                b
                for b in bb.master.get(f"buildrequests/{running['build_id']}/builds")["builds"]
                if b["complete"]
            ),
            None,
        ),
        30,
    )
    assert build["results"] == 6, build
    assert [r["state"] for r in _builds_table(s)] == ["cancelled"]
    assert states(s) == {"moving": "pending"}


@pytest.mark.slow
def test_a_culprits_invalidated_links_cancel_their_builds(
    make_scratch: MakeScratch, bb: CI
) -> None:
    """--concurrency 3: the head fails; the builds of the links on top are cancelled, rebuilt."""
    s = _setup(make_scratch, bb)
    # The links on top run their own script first (a1.sh sorts before z-bad.sh): slow
    # while built on the culprit, quick once rebuilt without it.
    slow = "[ -e checks.d/z-bad.sh ] && sleep 30\nexit 0\n"
    _candidate(s, "z-bad", FAIL)
    _candidate(s, "a1", slow)
    _candidate(s, "a2", slow)
    done = s("run", "--once", "--concurrency", "3")
    assert done.code == 3, _said(done, bb)
    assert states(s) == {"z-bad": "blocked", "a1": "integrated", "a2": "integrated"}
    rows = _builds_table(s)
    first = {slug: next(r for r in rows if r["slug"] == slug) for slug in ("a1", "a2")}
    for slug, row in first.items():
        assert row["state"] == "cancelled", (slug, rows)
        request = bb.master.get(f"buildrequests/{row['build_id']}")["buildrequests"][0]
        assert (request["complete"], request["results"]) == (True, 6), (slug, request)
    assert [r["state"] for r in rows if r["slug"] in ("a1", "a2")][-2:] == ["passed", "passed"]
