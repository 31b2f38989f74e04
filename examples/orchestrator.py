"""A small orchestrator in the next-machine style, driving mergegate from Python.

It builds a real integration repository (bare) and an author's clone, submits
two candidates that edit the same line, and integrates them in turn. The first
lands; the second conflicts. The orchestrator turns each outcome into
instructions, hears the block through a notification hook, remediates the
conflict in the clone (merge main, resolve, push), marks the follow-up done,
resumes the candidate at its new sha and integrates it.

Run it with a scratch folder: ``python examples/orchestrator.py /tmp/orchestrator``.
The orchestrator's own commits have fixed dates, so their shas are the same on every
run; mergegate's merge commits carry the time they were made, so ``main``'s sha differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mergegate.apply import GitApplier
from mergegate.followups import Wiring, build_engine
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine, Outcome, State, on_enter

# Fixed identity and dates: every run makes the same commits, hence the same output.
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Orchestrator",
    "GIT_AUTHOR_EMAIL": "orchestrator@example.com",
    "GIT_COMMITTER_NAME": "Orchestrator",
    "GIT_COMMITTER_EMAIL": "orchestrator@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run git in ``cwd``; return its stdout without the trailing newline."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False
    )
    if check and done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.rstrip("\n")


def author(clone: Path, branch: str, text: str) -> CandidateKey:
    """Commit ``text`` as config.txt on a new branch off main, push it, return its identity."""
    git(clone, "checkout", "-q", "-b", branch, "origin/main")
    (clone / "config.txt").write_text(text)
    git(clone, "commit", "-q", "-am", f"{branch}: set the timeout")
    git(clone, "push", "-q", "origin", branch)
    return CandidateKey(branch, branch, git(clone, "rev-parse", "HEAD"))


def instructions(outcome: Outcome) -> list[str]:
    """What the orchestrator tells its workers after one move."""
    key = outcome.candidate.key
    if outcome.state is State.INTEGRATED:
        return [f"DONE {key.slug}: integrated at {key.sha[:12]}"]
    if outcome.guidance is None:
        return [f"WAIT {key.slug}: {outcome.state.value}"]
    lines = [f"{outcome.guidance.code} {key.slug}"]
    lines += [f"  fact: {fact}" for fact in outcome.guidance.facts]
    lines += [f"  next: {command}" for command in outcome.guidance.next_commands]
    return lines


def remediate(clone: Path, key: CandidateKey, todos: Path, follow_up: str) -> str:
    """Merge main into the branch, keep both settings, push, mark the follow-up done."""
    git(clone, "fetch", "-q", "origin")
    git(clone, "checkout", "-q", key.branch)
    git(clone, "merge", "-q", "origin/main", check=False)  # conflicts, as reported
    (clone / "config.txt").write_text("timeout = 30\nretries = 3\n")
    git(clone, "commit", "-q", "-am", f"{key.slug}: merge main, keep both settings")
    git(clone, "push", "-q", "origin", key.branch)
    state = todos / follow_up / "state.yaml"
    state.write_text(state.read_text().replace("status: open", "status: done"))
    return git(clone, "rev-parse", "HEAD")


def main(scratch: Path) -> int:
    """Run the scenario in ``scratch`` (created; must not exist) and print what happens."""
    integration, clone, todos = scratch / "integration.git", scratch / "clone", scratch / "todos"
    scratch.mkdir(parents=True)
    git(scratch, "init", "-q", "--bare", "-b", "main", str(integration))
    git(scratch, "clone", "-q", str(integration), str(clone))
    (clone / "config.txt").write_text("timeout = 10\n")
    git(clone, "add", "config.txt")
    git(clone, "commit", "-q", "-m", "base")
    git(clone, "push", "-q", "origin", "HEAD:main")
    git(clone, "fetch", "-q", "origin")

    notifications: list[str] = []

    def notify(outcome: Outcome) -> None:
        blocked = outcome.blocked
        assert blocked is not None  # on_enter(BLOCKED) always carries the record
        notifications.append(f"{outcome.candidate.key.slug} blocked: {blocked.reason.value}")

    store = SQLiteStore(scratch / "mergegate.sqlite3")
    try:
        engine: Engine = build_engine(
            store,
            Wiring(todos, boundary=scratch),
            hooks=[on_enter(State.BLOCKED, notify)],
            actor="orchestrator",
        )
        applier = GitApplier(integration)
        first = author(clone, "timeout-30", "timeout = 30\n")
        second = author(clone, "add-retries", "timeout = 10\nretries = 3\n")
        for key in (first, second):
            engine.submit(key)
        while (outcome := engine.apply_next(applier, owner="orchestrator")) is not None:
            for line in instructions(outcome):
                print(line)
            if outcome.state is State.BLOCKED:
                assert outcome.blocked is not None
                engine.start_remediation(outcome.candidate.key.slug)
                new_sha = remediate(
                    clone, outcome.candidate.key, todos, outcome.blocked.follow_up_slug
                )
                resumed = engine.resume(outcome.candidate.key.slug, new_sha=new_sha)
                print(f"RESUMED {resumed.candidate.key.slug} at {new_sha[:12]}")
        for note in notifications:
            print(f"notified: {note}")
        print(f"main: {git(integration, 'show', 'main:config.txt')!r}")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python examples/orchestrator.py SCRATCH_DIR (created)")
    raise SystemExit(main(Path(sys.argv[1])))
