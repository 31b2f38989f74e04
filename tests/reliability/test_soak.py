"""A bounded soak: `run --concurrency 3` among people, on SQLite and on PostgreSQL.

Two integrators drain one queue in an integration clone with main checked
out, while a driver, at random, submits, withdraws and supersedes candidates,
commits to main in that work tree as a person would (``git add``, ``git
commit``), runs ``git status`` there, holds ``index.lock`` (an IDE) and git's
lock on main, SIGSTOPs integrators (past their lease) and SIGKILLs and
restarts them. At the end every integrator must still be running (only the
driver's own kills end one), ``verify`` must be clean, no candidate may be
blocked (every candidate is innocent: its check passes and it never
conflicts), and main must integrate the candidates in queue order. The counts
are printed (``-s``) and copied into docs/reliability.md.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ..gitrepo import git, git_env, init_repo

#: Seconds of driving per store; the whole test also drains and checks (~20 s more).
SOAK_SECONDS = float(os.environ.get("MERGEGATE_SOAK_SECONDS", "150"))

#: Seconds between two of the people's own commits to main (see commit_to_main).
MAIN_COMMIT_GAP = 8.0

CONFIG = """
lease_ttl = 3
[[checks]]
name = "quick"
argv = 'sleep 3'
shell = true
"""


class Soak:
    """The repository, the integrators and the driver's counts."""

    def __init__(self, root: Path, db: tuple[str, ...]) -> None:
        self.root, self.db = root, db
        # A clone with a work tree: people type git commands in it while run works.
        self.repo = init_repo(root / "integration")
        self.gitdir = self.repo / ".git"
        self.counts: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.integrators: list[subprocess.Popen[str]] = []
        self.killed: set[int] = set()
        self.rng = random.Random(20261206)
        self.serial = 0
        #: Commits a "person" pushed straight to main: acknowledged as an operator would.
        self.outside: list[str] = []
        self.queued: list[str] = []
        self.submitted: list[str] = []
        self.seeded = False
        self.last_main_commit = 0.0
        #: Stops of an integrator while each candidate was applying (see _may_interrupt).
        self.interruptions: Counter[str] = Counter()
        #: What the driver did to the integrators, and when (UTC), for a failure's report.
        self.timeline: list[str] = []
        self._commit("refs/heads/main", None, "seed.txt")
        self.seeded = True
        # The seed was written behind the work tree's back: check it out, clean.
        self.person("reset", "-q", "--hard")
        (self.repo / "mergegate.toml").write_text(CONFIG)
        assert self.cli("init").returncode == 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "mergegate.cli", "--repo", str(self.repo), *self.db, *args],
            env=git_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def person(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A git command typed in the integration clone's work tree."""
        return subprocess.run(
            ["git", *args],
            cwd=self.repo,
            env=git_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    def _commit(self, ref: str, parent: str | None, name: str) -> str | None:
        """A commit adding file ``name`` onto ``parent`` (main now, if None), set at ``ref``."""
        env = git_env()
        env["GIT_INDEX_FILE"] = str(self.root / "driver.index")
        base = parent
        if base is None and self.seeded:
            # On main's tip now: a person's commit to main, or a branch made from it.
            base = git(self.repo, "rev-parse", "refs/heads/main")
        run = lambda *a, i=None: subprocess.run(  # noqa: E731
            ["git", *a], cwd=self.repo, env=env, input=i, capture_output=True, text=True, check=True
        ).stdout.strip()
        if base is None:
            run("read-tree", "--empty")
        else:
            run("read-tree", base)
        blob = run("hash-object", "-w", "--stdin", i=f"{name} {self.serial}\n")
        run("update-index", "--add", "--cacheinfo", f"100644,{blob},{name}")
        tree = run("write-tree")
        sha = run("commit-tree", tree, *(["-p", base] if base else []), "-m", f"add {name}")
        moved = subprocess.run(
            ["git", "update-ref", ref, sha, *([base] if ref == "refs/heads/main" and base else [])],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        return sha if moved.returncode == 0 else None

    # -- integrators ----------------------------------------------------------

    def start(self) -> None:
        log = (self.root / f"run-{len(self.integrators)}.log").open("w")
        self.integrators.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mergegate.cli",
                    "--repo",
                    str(self.repo),
                    *self.db,
                    "run",
                    "--concurrency",
                    "3",
                    "--poll",
                    "0.1",
                ],
                env=git_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
        log.close()

    def live(self) -> list[subprocess.Popen[str]]:
        found = []
        for proc in self.integrators:
            code = proc.poll()
            if code is None:
                found.append(proc)
            elif proc.pid not in self.killed and f"{proc.pid}" not in " ".join(self.unexpected):
                log = self.root / f"run-{self.integrators.index(proc)}.log"
                self.unexpected.append(f"{proc.pid} exited {code}: {log.read_text()[-800:]}")
        return found

    # -- the driver's moves -----------------------------------------------------

    def submit(self) -> None:
        # In bursts, as a team pushes after a meeting: often more than the two
        # integrators' six chain slots, whose checks take seconds, so a queue forms
        # behind them and people who change their minds find their candidates queued.
        # One after another, so that the submission order is the slugs' order.
        for _ in range(self.rng.randint(1, 10)):
            self.serial += 1
            slug = f"c{self.serial:04d}"
            if self._commit(f"refs/heads/{slug}", None, f"{slug}.txt") is None:
                continue
            if self.cli("submit", slug).returncode == 0:
                self.counts["submitted"] += 1
                self.queued.append(slug)
                self.submitted.append(slug)
        if self.rng.random() < 0.5:
            self.withdraw()
        if self.rng.random() < 0.5:
            self.supersede()

    def _pending(self) -> list[str]:
        """The driver's candidates still queued, as the store says now."""
        states = self.states()
        self.queued = [slug for slug in self.queued if states.get(slug) in ("pending", "retry")]
        return self.queued

    def withdraw(self) -> None:
        if self._pending():
            slug = self.rng.choice(self.queued)
            # Refused (exit 4) when an integrator took it first: that is the person's race.
            if self.cli("withdraw", slug, "--why", "soak").returncode == 0:
                self.counts["withdrawn"] += 1
                self.queued.remove(slug)

    def supersede(self) -> None:
        if self._pending():
            slug = self.rng.choice(self.queued)
            self.serial += 1
            # A developer pushes a fix on top of the branch. (A rewrite instead would
            # leave a candidate the integrator took first outside its own branch: a
            # precondition_failed block, rightly, for the person's force-push.)
            tip = git(self.repo, "rev-parse", f"refs/heads/{slug}")
            if self._commit(f"refs/heads/{slug}", tip, f"{slug}.txt") is None:
                return
            # Refused (exit 4) when an integrator took it meanwhile: the person's race.
            if self.cli("submit", slug).returncode == 0:
                self.counts["superseded"] += 1

    def commit_to_main(self) -> None:
        """A person commits a new file to the checked-out main, as people do."""
        # At a person's pace: main moving during each of max_main_retries + 1 = 4
        # attempts of a 3 s check in a row is the documented main_moved block (the
        # bound on a starved candidate), which commits every 3 s would provoke.
        if time.monotonic() - self.last_main_commit < MAIN_COMMIT_GAP:
            return
        self.last_main_commit = time.monotonic()
        self.serial += 1
        name = f"main-{self.serial}.txt"
        (self.repo / name).write_text(f"{name}\n")
        if self.person("add", name).returncode != 0:  # index.lock held by run or by the IDE
            (self.repo / name).unlink()
            return
        # git commit refuses while run holds main.lock, or when main moved since it read
        # HEAD; a person tries again, and unstages the file if it never goes in.
        for _ in range(20):
            if self.person("commit", "-q", "-m", f"add {name}").returncode == 0:
                self.outside.append(git(self.repo, "rev-parse", "HEAD"))
                self.counts["main commits"] += 1
                return
            time.sleep(0.1)
        self.person("rm", "-q", "--cached", name)
        (self.repo / name).unlink()
        self.counts["main commits given up"] += 1

    def status(self) -> None:
        """A person's `git status`: it refreshes the index under index.lock."""
        if self.person("status", "--porcelain").returncode == 0:
            self.counts["git status"] += 1

    def _hold(self, lock: Path, key: str) -> None:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(fd)
        time.sleep(self.rng.uniform(0.2, 1.5))
        lock.unlink()
        self.counts[key] += 1

    def hold_lock(self) -> None:
        self._hold(self.gitdir / "refs" / "heads" / "main.lock", "main.lock holds")

    def hold_index(self) -> None:
        """An IDE or a slow `git status` holding the work tree's index for a while."""
        self._hold(self.gitdir / "index.lock", "index.lock holds")

    def _may_interrupt(self, proc: subprocess.Popen[str]) -> bool:
        """Whether stopping ``proc`` now could not make a third interruption in a row.

        Three interruptions in a row of one candidate block it (``apply_interrupted``:
        it may be what kills its integrator). People who stopped the integrator twice
        during one candidate look before a third time; so does the driver. It counts
        every candidate applying at each stop, whichever integrator holds it.

        It looks while ``proc`` is already stopped (SIGSTOP), so the look is what the
        stop interrupts: read first, a chain's links started between the read and the
        signal went uncounted, and a third interruption of three of them at once
        blocked them (a CI run's soak). Held back, ``proc`` goes on at once, well
        inside its lease: no interruption.
        """
        proc.send_signal(signal.SIGSTOP)
        applying = [slug for slug, state in self.states().items() if state == "applying"]
        if any(self.interruptions[slug] >= 2 for slug in applying):
            proc.send_signal(signal.SIGCONT)
            self.counts["stops held back"] += 1
            self._said(f"stop of {proc.pid} held back; applying {applying}")
            return False
        self.interruptions.update(applying)
        self._said(f"stopping {proc.pid}; applying {applying}")
        return True

    def _said(self, text: str) -> None:
        """One line of the driver's timeline: a failure lists it beside the store's log."""
        self.timeline.append(
            f"{time.strftime('%H:%M:%S', time.gmtime())}.{int(time.time() * 1000) % 1000:03} {text}"
        )

    def stall(self) -> None:
        live = self.live()
        if not live:
            return
        proc = self.rng.choice(live)
        if self._may_interrupt(proc):
            time.sleep(self.rng.uniform(0.5, 4.5))
            proc.send_signal(signal.SIGCONT)
            self.counts["SIGSTOPs"] += 1
            self._said(f"continued {proc.pid}")

    def kill(self) -> None:
        live = self.live()
        if not live:
            return
        proc = self.rng.choice(live)
        if self._may_interrupt(proc):
            self.killed.add(proc.pid)
            proc.kill()
            proc.wait()
            self.counts["SIGKILLs"] += 1
            self.start()
            self._said(f"killed {proc.pid}; started {self.integrators[-1].pid}")

    def explain(self, blocked: dict[str, str]) -> str:
        """Why candidates were blocked: their logs, every integrator's lines naming
        them, the driver's timeline and its interruption counts (all times UTC)."""
        parts = []
        for slug, history in blocked.items():
            shown = self.cli("--json", "show", slug).stdout
            detail = json.loads(shown).get("result", {}).get("latest_evidence") if shown else None
            parts += [f"--- {slug}: history ---", history, f"--- {slug}: evidence ---"]
            parts.append(json.dumps(detail, indent=1))
            parts.append(f"--- {slug}: driver counted {self.interruptions[slug]} stop(s) ---")
            for n, proc in enumerate(self.integrators):
                log = (self.root / f"run-{n}.log").read_text(errors="replace")
                lines = [ln for ln in log.splitlines() if slug in ln or "lease" in ln]
                parts.append(
                    f"--- run-{n}.log (pid {proc.pid}), lines naming {slug} or a lease ---"
                )
                parts += lines[-20:]
        parts += ["--- the driver's timeline ---", *self.timeline]
        return "\n".join(parts)

    def drive(self, seconds: float) -> None:
        moves = [
            (self.submit, 6),
            (self.withdraw, 3),
            (self.supersede, 3),
            (self.commit_to_main, 2),
            (self.status, 1),
            (self.hold_lock, 1),
            (self.hold_index, 1),
            (self.stall, 1),
            (self.kill, 1),
        ]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            move = self.rng.choices([m for m, _ in moves], [w for _, w in moves])[0]
            move()
            self.live()
            time.sleep(self.rng.uniform(0.05, 0.4))

    def states(self) -> dict[str, str]:
        done = self.cli("--json", "list", "--all")
        assert done.returncode == 0, done.stderr
        return {c["slug"]: c["state"] for c in json.loads(done.stdout)["result"]["candidates"]}

    def drain(self, timeout: float = 120) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        states = self.states()
        while time.monotonic() < deadline and any(
            s in ("pending", "retry", "applying") for s in states.values()
        ):
            time.sleep(0.5)
            states = self.states()
        return states


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_soak_run_among_people(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """run --concurrency 3 lives a team day: no exit, verify clean, no innocent block, in order."""
    db: tuple[str, ...] = ()
    if backend == "postgres":
        db = ("--db", request.getfixturevalue("pg_url"))
    soak = Soak(tmp_path, db)
    for _ in range(2):
        soak.start()
    try:
        soak.drive(SOAK_SECONDS)
        states = soak.drain()
        live = soak.live()
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(timeout=60) for proc in live]
    finally:
        for proc in soak.integrators:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
    # verify explains every first-parent commit of main: the people's own commits are
    # outside moves an operator acknowledges (docs/cli.md, `mergegate acknowledge`).
    for sha in soak.outside:
        acked = soak.cli("acknowledge", sha, "--why", "soak: a person committed to main")
        assert acked.returncode == 0, acked.stderr
    verify = soak.cli("verify")
    # The checked-out main followed every move: its index and files are main's.
    in_step = soak.person("diff", "--quiet", "HEAD")
    by_state = Counter(states.values())
    integrated_order = re.findall(
        r"^mergegate: integrate (c\d+)",
        git(soak.repo, "log", "--reverse", "--first-parent", "--format=%s", "refs/heads/main"),
        re.MULTILINE,
    )
    inversions = sum(1 for a, b in itertools.pairwise(integrated_order) if a > b)
    report = {
        "backend": backend,
        "seconds": SOAK_SECONDS,
        **soak.counts,
        "restarts": soak.counts["SIGKILLs"],
        "states": dict(by_state),
        "unexpected exits": len(soak.unexpected),
        "final exit codes": codes,
        "verify": verify.returncode,
        "order inversions": inversions,
        "work tree in step": in_step.returncode == 0,
    }
    print(f"\nsoak {json.dumps(report, sort_keys=True)}")
    assert not soak.unexpected, soak.unexpected
    assert codes == [0] * len(codes), codes
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert not any(s in ("pending", "retry", "applying") for s in states.values()), by_state
    blocked = {
        slug: soak.cli("history", slug).stdout for slug, s in states.items() if s == "blocked"
    }
    assert not blocked, soak.explain(blocked)
    assert inversions == 0, integrated_order
    assert in_step.returncode == 0, soak.person("status", "--short").stdout
