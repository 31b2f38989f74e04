"""The child process of the kill tests: drives a real Engine, store, applier and todos folder.

Run as ``python driver.py STORE_URL REPO TODOS SEED PAUSE [MAX_OPS]``. It makes
candidate branches in REPO (a bare repository), submits them, applies them with
a real GitApplier, remediates and resumes the blocked ones, and replays blocked
reports, choosing each step from the store's current state with ``random.Random(SEED)``.

Every committed move is printed as ``STEP <slug> <candidate-id> <seq> <event>``
by a hook, which the Engine runs only after the move's commit returned. PAUSE
names where the driver stops to be killed: it prints ``PAUSE <where>`` and
sleeps there until the parent's SIGKILL lands:

- ``tx:N``        inside the N-th store transaction, after its writes, before COMMIT;
- ``hook:N``      after the N-th blocking commit, before its follow-up is materialized;
- ``check``       while a check runs (the check announces itself in MG_CHECK_MARK);
- ``heartbeat:N`` at the N-th heartbeat of an apply (2 and later: the merge
                  commit exists, ``main`` is not moved yet);
- ``integrate:N`` inside the N-th transaction that records an ``integrate``, before
                  its COMMIT: ``main`` has moved, the store does not know yet;
- ``none``        no pause (the parent kills at a random time, or the run ends).

At the end it prints ``DONE``.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from mergegate.apply import CheckSpec, GitApplier, Identity
from mergegate.apply.git import Git
from mergegate.followups import (
    ResolvedRule,
    Wiring,
    build_engine,
    mark_done,
)
from mergegate.persistence import open_store
from mergegate.statemachine import (
    ApplyResult,
    BlockedReport,
    CandidateKey,
    Evidence,
    MergegateError,
    Outcome,
    Reason,
    State,
    Store,
)

CHECK_SCRIPT = (
    "import os, sys, time\n"
    "mark = os.environ.get('MG_CHECK_MARK')\n"
    "if mark:\n"
    "    open(mark, 'a').close()\n"
    "    time.sleep(120)\n"
    "sys.exit(1 if os.path.exists('FAIL') else 0)\n"
)


def emit(*words: object) -> None:
    """One line on stdout, flushed at once: the parent reads it while we run."""
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def pause(where: str) -> None:
    """Announce ``where`` and wait to be killed."""
    emit("PAUSE", where)
    time.sleep(600)
    sys.exit(3)


class Counter:
    """Counts the occurrences of one kind of point and pauses at the chosen one."""

    def __init__(self, kind: str, spec: str) -> None:
        name, _, number = spec.partition(":")
        self.active = name == kind
        self.target = int(number) if self.active and number else 0
        self.seen = 0
        self.kind = kind

    def tick(self) -> None:
        if not self.active:
            return
        self.seen += 1
        if self.seen == self.target:
            pause(f"{self.kind}:{self.target}")


class Watched:
    """The real transaction; remembers which events it appended."""

    def __init__(self, tx: Any) -> None:
        self._tx = tx
        self.events: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def append(self, candidate: Any, entry: Any, step: Any) -> Any:
        self.events.append(entry.event.value)
        return self._tx.append(candidate, entry, step)


class PausingStore:
    """The real store; a chosen transaction pauses after its writes, before COMMIT."""

    def __init__(self, store: Store, counter: Counter, integrate: Counter) -> None:
        self._store = store
        self._counter = counter
        self._integrate = integrate

    def __getattr__(self, name: str) -> Any:
        if name == "move":
            # No one-piece fast path: every move goes through a pausing transaction.
            raise AttributeError(name)
        return getattr(self._store, name)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._store.transaction() as tx:
            watched = Watched(tx)
            yield watched
            self._counter.tick()
            if "integrate" in watched.events:
                self._integrate.tick()


class Reporter:
    """A hook that prints each committed move; it runs after the commit returned."""

    def after_commit(self, outcome: Outcome) -> Outcome:
        entry = outcome.transition
        if entry is not None:
            emit("STEP", outcome.candidate.key.slug, entry.candidate_id, entry.seq, entry.event)
        return outcome


class BeforeFollowUp:
    """A hook placed before the follow-up hook: pauses after the N-th blocking commit."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter

    def after_commit(self, outcome: Outcome) -> Outcome:
        entry = outcome.transition
        if outcome.blocked is not None and entry is not None and entry.event.value == "block":
            self._counter.tick()
        return outcome


class PausingApplier:
    """The real GitApplier, with a heartbeat that pauses at its N-th call."""

    def __init__(self, applier: GitApplier, counter: Counter) -> None:
        self._applier = applier
        self._counter = counter

    def main_sha(self) -> str:
        return self._applier.main_sha()

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        self._counter.seen = 0

        def beat() -> None:
            heartbeat()
            self._counter.tick()

        return self._applier.apply(key, beat)


def _data(text: str) -> str:
    return f"data {len(text.encode())}\n{text}\n"


def make_commit(git: Git, ref: str, parent: str, edits: dict[str, str | None]) -> str:
    """Commit ``edits`` on ``parent`` and point ``ref`` at it, with git fast-import."""
    stream = f"commit {ref}\nmark :1\ncommitter t <t@x> {int(time.time())} +0000\n"
    stream += _data(f"edit {ref}") + f"from {parent}\n"
    for path, content in sorted(edits.items()):
        stream += f"D {path}\n" if content is None else f"M 100644 inline {path}\n" + _data(content)
    stream += "get-mark :1\n"
    out = git.run("fast-import", "--quiet", "--force", stdin=stream.encode()).text
    return out.split()[-1]


class Driver:
    """Chooses and runs one step at a time from the store's current state."""

    def __init__(self, url: str, repo: Path, todos: Path, seed: int, spec: str) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.store = open_store(url)
        self.tx_counter = Counter("tx", spec)
        self.hook_counter = Counter("hook", spec)
        self.beat_counter = Counter("heartbeat", spec)
        self.integrate_counter = Counter("integrate", spec)
        if spec == "check":
            os.environ["MG_CHECK_MARK"] = str(todos.parent / "check-running")
        store: Any = PausingStore(self.store, self.tx_counter, self.integrate_counter)
        self.engine = build_engine(
            store,
            Wiring(todos),
            hooks_before=[Reporter(), BeforeFollowUp(self.hook_counter)],
            actor=f"driver-{seed}",
            # Read per run, not at import: the zygote imports this module once for many runs.
            lease_ttl=timedelta(seconds=float(os.environ.get("MG_LEASE_TTL", "1.0"))),
        )
        check = CheckSpec("marker", (sys.executable, "-c", CHECK_SCRIPT), timeout=60)
        git_applier = GitApplier(repo, checks=(check,), heartbeat_every=0.1, max_main_retries=1)
        self.applier = PausingApplier(git_applier, self.beat_counter)
        self.git = Git(repo, Identity("t", "t@x"))
        self.todos = todos
        self.made = 0

    def main(self) -> str:
        return self.applier.main_sha()

    def root(self) -> str:
        return self.git.run("rev-list", "--max-parents=0", "refs/heads/main").text.split()[0]

    def new_commit(self, slug: str, branch: str) -> str:
        """A candidate commit: clean, failing its check, or conflicting on shared.txt."""
        kind = self.rng.choice(["clean", "clean", "fail", "conflict"])
        if kind == "conflict":
            return make_commit(
                self.git, f"refs/heads/{branch}", self.root(), {"shared.txt": f"{slug}\n"}
            )
        edits: dict[str, str | None] = {f"files/{slug}-{self.made}.txt": f"{slug}\n"}
        if kind == "fail":
            edits["FAIL"] = "fail\n"
        return make_commit(self.git, f"refs/heads/{branch}", self.main(), edits)

    def submit(self) -> None:
        self.made += 1
        slug = f"c{self.seed}-{self.made}"
        branch = f"work/{slug}"
        sha = self.new_commit(slug, branch)
        self.engine.submit(CandidateKey(slug, branch, sha))

    def remediate_and_resume(self, slug: str) -> None:
        """Fix the candidate with a clean commit on main, mark the follow-up done, resume."""
        candidate = self.engine.get(slug)
        if candidate.state is State.BLOCKED:
            self.engine.start_remediation(slug, expected_seq=candidate.seq)
            return
        record = self.store.blocked_record(candidate.key)
        self.made += 1
        sha = make_commit(
            self.git,
            f"refs/heads/{candidate.key.branch}",
            self.main(),
            {f"files/{slug}-fix-{self.made}.txt": "fixed\n"},
        )
        force = None
        if record is not None:
            # As an operator would: `mergegate followups done`, which answers this
            # very occurrence (a hand-edited `status: done` answers only the first).
            try:
                mark_done(
                    ResolvedRule.STATE_DONE,
                    record,
                    todos_root=self.todos,
                    roadmap=self.todos / "roadmap.yaml",
                )
            except MergegateError:
                force = "the follow-up cannot be marked done; resumed by the driver"
        self.engine.resume(slug, new_sha=sha, force_reason=force, expected_seq=candidate.seq)

    def replay(self, slug: str) -> None:
        """Report the same candidate blocked again (an orchestrator's own detection)."""
        candidate = self.engine.get(slug)
        report = BlockedReport(
            Reason.EXTERNAL,
            self.main(),
            Evidence(diagnostic=f"replayed by driver {self.seed}"),
            detail="the orchestrator saw the block again",
        )
        self.engine.block(slug, report, expected_seq=candidate.seq)

    def step(self) -> None:
        by_state: dict[State, list[str]] = {}
        for c in self.store.candidates():
            by_state.setdefault(c.state, []).append(c.key.slug)
        ready = by_state.get(State.PENDING, []) + by_state.get(State.RETRY, [])
        stuck = by_state.get(State.BLOCKED, []) + by_state.get(State.REMEDIATING, [])
        choices: list[tuple[str, Callable[[], object]]] = [("submit", self.submit)]
        if ready:
            choices += [("apply", self.apply)] * 3
        if stuck:
            slug = self.rng.choice(stuck)
            choices += [("resume", lambda: self.remediate_and_resume(slug))] * 2
            choices.append(("replay", lambda: self.replay(slug)))
        if len(ready) + len(stuck) > 6:
            choices = [c for c in choices if c[0] != "submit"] or choices
        _name, action = self.rng.choice(choices)
        action()

    def apply(self) -> None:
        self.engine.apply_next(self.applier, owner=f"driver-{self.seed}")


def main(argv: list[str]) -> int:
    url, repo, todos, seed, spec = argv[:5]
    max_ops = int(argv[5]) if len(argv) > 5 else 30
    driver = Driver(url, Path(repo), Path(todos), int(seed), spec)
    for _ in range(max_ops):
        try:
            driver.step()
        except MergegateError as err:
            # Expected refusals (a stale seq, an unresolved follow-up) write nothing.
            emit("REFUSED", type(err).__name__)
    emit("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
