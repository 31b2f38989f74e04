"""A small orchestrator in the next-machine style, driving mergegate from Python.

It builds a real integration repository (bare) and an author's clone, submits
two candidates that edit the same line, and lets integrators drain the queue.
The first lands; the second conflicts. A remediator follows the change feed,
and for each blocked candidate follows its guidance through
``Guidance.actions`` alone (no command text is parsed): it starts the
remediation, fixes the branch in the clone (merge main, keep both settings,
push) and marks the follow-up done, resumes the candidate at its branch's tip,
and leaves the apply to the integrators, which take it from the queue.

Nobody polls: the integrators and the remediator wait on the store's change
feed (``wait_for_change``), which wakes them when a move commits.

Run it with a scratch folder: ``python examples/orchestrator.py /tmp/orchestrator``.
Options: ``--store URL`` (default: a SQLite file in the scratch folder; a
``postgresql://...?schema=name`` URL works the same), ``--workers N``
integrators (default 1), and ``--asyncio`` to run everything as asyncio tasks
over ``AsyncEngine`` instead of threads. The orchestrator's own commits have
fixed dates, so their shas are the same on every run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import threading
from pathlib import Path

from mergegate.apply import GitApplier, branch_tip
from mergegate.followups import ResolvedRule, Wiring, build_engine, drain, mark_done
from mergegate.persistence import open_store
from mergegate.statemachine import (
    Apply,
    AsyncEngine,
    CandidateKey,
    ChangeFeed,
    Engine,
    LeaseHeld,
    MarkDone,
    Outcome,
    Remediate,
    Resume,
    Show,
    State,
    Sync,
)

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
WAIT = 5.0  # seconds per wait on the feed; a commit wakes the waiter long before
_PRINT = threading.Lock()


def say(line: str) -> None:
    """Print one line whole, whichever thread says it."""
    with _PRINT:
        print(line, flush=True)


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


def settings(text: str) -> dict[str, str]:
    """``key = value`` lines as a dict, in order."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            found[name] = value
    return found


def fix_branch(clone: Path, branch: str) -> None:
    """The agent's work: merge main into ``branch``, keep main's settings plus the branch's
    new ones, commit and push."""
    git(clone, "fetch", "-q", "origin")
    git(clone, "checkout", "-q", branch)
    ours = settings(git(clone, "show", f"origin/{branch}:config.txt"))
    git(clone, "merge", "-q", "origin/main", check=False)  # conflicts, as reported
    merged = settings(git(clone, "show", "origin/main:config.txt"))
    merged.update({k: v for k, v in ours.items() if k not in merged})
    (clone / "config.txt").write_text("".join(f"{k} = {v}\n" for k, v in merged.items()))
    git(clone, "commit", "-q", "-am", f"{branch}: merge main, keep both settings")
    git(clone, "push", "-q", "origin", branch)


class World:
    """The repositories, the wiring and the store URL every part of the orchestrator shares."""

    def __init__(self, scratch: Path, store_url: str | None) -> None:
        self.integration = scratch / "integration.git"
        self.clone = scratch / "clone"
        self.wiring = Wiring(scratch / "todos", boundary=scratch)
        self.url = store_url or str(scratch / "mergegate.sqlite3")
        self.slugs: list[str] = []

    def engine(self, actor: str) -> Engine:
        """An Engine on a store of its own (a session of its own on PostgreSQL)."""
        return build_engine(open_store(self.url), self.wiring, actor=actor)

    def finished(self, engine: Engine) -> bool:
        """Every submitted candidate is integrated."""
        return all(engine.get(slug).state is State.INTEGRATED for slug in self.slugs)

    def follow(self, engine: Engine, slug: str) -> None:
        """Follow the blocked candidate's guidance, action by action."""
        shown = engine.show(slug)
        if shown.state is not State.BLOCKED or shown.guidance is None:
            return  # already handled (a replayed change)
        say(f"{shown.guidance.code} {slug}")
        for action in shown.guidance.actions:
            say(f"  follow: {action.name}")
            match action:
                case Sync():
                    drain(engine.store, self.wiring.followups())
                case Remediate(slug=slug):
                    engine.start_remediation(slug)
                case MarkDone(slug=slug):
                    fix_branch(self.clone, engine.get(slug).key.branch)
                    record = engine.show(slug).blocked
                    assert record is not None
                    mark_done(
                        ResolvedRule.STATE_DONE,
                        record,
                        todos_root=self.wiring.todos_root,
                        roadmap=self.wiring.roadmap,
                    )
                case Resume(slug=slug, branch=branch):
                    tip = branch_tip(self.integration, branch)
                    engine.resume(slug, new_sha=tip)
                    say(f"RESUMED {slug} at {tip[:12]}")
                case Apply():
                    pass  # queued again (retry): an integrator takes it
                case Show():
                    pass


def feed(engine: Engine) -> ChangeFeed:
    """The Engine's store as a change feed (both mergegate stores are one)."""
    assert isinstance(engine.store, ChangeFeed)
    return engine.store


def report(outcome: Outcome) -> None:
    """Say what one apply did."""
    key = outcome.candidate.key
    if outcome.state is State.INTEGRATED:
        say(f"DONE {key.slug}: integrated at {key.sha[:12]}")
    else:
        say(f"SETTLED {key.slug}: {outcome.state.value}")


def integrator(world: World, name: str) -> None:
    """Apply the queue's head until everything is integrated; wait on the feed in between."""
    engine = world.engine(name)
    applier = GitApplier(world.integration)
    try:
        while not world.finished(engine):
            cursor = feed(engine).feed_head()
            try:
                outcome = engine.apply_next(applier, owner=name)
            except LeaseHeld:
                outcome = None
            if outcome is None:
                feed(engine).wait_for_change(cursor, WAIT)
            else:
                report(outcome)
    finally:
        engine.store.close()


def remediator(world: World) -> None:
    """Follow the change feed; follow the guidance of every candidate that gets blocked."""
    engine = world.engine("remediator")
    try:
        cursor = 0
        while not world.finished(engine):
            for change in feed(engine).changes(after=cursor):
                cursor = change.cursor
                if change.transition.dest is State.BLOCKED:
                    world.follow(engine, change.key.slug)
            feed(engine).wait_for_change(cursor, WAIT)
    finally:
        engine.store.close()


async def integrator_task(world: World, name: str) -> None:
    """:func:`integrator` as an asyncio task over the AsyncEngine facade."""
    engine = AsyncEngine(world.engine(name))
    applier = GitApplier(world.integration)
    try:
        while not await engine.call(world.finished, engine.engine):
            cursor = await engine.feed_head()
            try:
                outcome = await engine.apply_next(applier, owner=name)
            except LeaseHeld:
                outcome = None
            if outcome is None:
                await engine.wait_for_change(cursor, WAIT)
            else:
                report(outcome)
    finally:
        engine.engine.store.close()


async def remediator_task(world: World) -> None:
    """:func:`remediator` as an asyncio task over the AsyncEngine facade."""
    engine = AsyncEngine(world.engine("remediator"))
    try:
        cursor = 0
        while not await engine.call(world.finished, engine.engine):
            for change in await engine.changes(after=cursor):
                cursor = change.cursor
                if change.transition.dest is State.BLOCKED:
                    await engine.call(world.follow, engine.engine, change.key.slug)
            await engine.wait_for_change(cursor, WAIT)
    finally:
        engine.engine.store.close()


def setup(world: World, scratch: Path) -> None:
    """The repositories and the two candidates, submitted."""
    scratch.mkdir(parents=True)
    git(scratch, "init", "-q", "--bare", "-b", "main", str(world.integration))
    git(scratch, "clone", "-q", str(world.integration), str(world.clone))
    (world.clone / "config.txt").write_text("timeout = 10\n")
    git(world.clone, "add", "config.txt")
    git(world.clone, "commit", "-q", "-m", "base")
    git(world.clone, "push", "-q", "origin", "HEAD:main")
    git(world.clone, "fetch", "-q", "origin")
    first = author(world.clone, "timeout-30", "timeout = 30\n")
    second = author(world.clone, "add-retries", "timeout = 10\nretries = 3\n")
    engine = world.engine("orchestrator")
    try:
        for key in (first, second):
            engine.submit(key)
            world.slugs.append(key.slug)
    finally:
        engine.store.close()


def main(scratch: Path, store_url: str | None, workers: int, use_asyncio: bool) -> int:
    """Run the scenario in ``scratch`` (created; must not exist) and print what happens."""
    world = World(scratch, store_url)
    setup(world, scratch)
    if use_asyncio:

        async def everything() -> None:
            tasks = [integrator_task(world, f"worker-{n}") for n in range(1, workers + 1)]
            await asyncio.gather(remediator_task(world), *tasks)

        asyncio.run(everything())
    else:
        threads = [threading.Thread(target=remediator, args=(world,))]
        threads += [
            threading.Thread(target=integrator, args=(world, f"worker-{n}"))
            for n in range(1, workers + 1)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    say(f"main: {git(world.integration, 'show', 'main:config.txt')!r}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scratch", type=Path, help="a folder to create for the run")
    parser.add_argument("--store", default=None, help="a store URL (default: SQLite in scratch)")
    parser.add_argument("--workers", type=int, default=1, help="integrators (default 1)")
    parser.add_argument("--asyncio", action="store_true", help="asyncio tasks, not threads")
    args = parser.parse_args()
    raise SystemExit(main(args.scratch, args.store, args.workers, args.asyncio))
