"""Child processes of the race and fault tests; each does one thing against a real store.

Run as ``python workers.py COMMAND ARG...``. A worker prints ``READY`` once it
has opened everything, waits for the file ``GO`` to appear (so every racer
starts its real work at the same moment), does its work, and prints one
result line per outcome: ``OK ...`` or ``ERR <ErrorType> <message>``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from mergegate.apply import GitApplier
from mergegate.followups import (
    Wiring,
    build_engine,
)
from mergegate.followups.roadmap import add_roadmap_entry
from mergegate.persistence import open_store
from mergegate.statemachine import (
    BlockedReport,
    Engine,
    Evidence,
    IllegalTransition,
    LeaseHeld,
    MergegateError,
    Reason,
    Store,
)


def say(*words: object) -> None:
    """One flushed line on stdout."""
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def wait_for(go: str) -> None:
    """Say READY, then wait for the parent's start signal."""
    say("READY")
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise SystemExit("no GO within 60 s")
        time.sleep(0.001)


def engine(store: Store, todos: str, owner: str) -> Engine:
    """An Engine wired as the CLI wires it: follow-up hook, guide and resolver."""
    return build_engine(store, Wiring(Path(todos)), actor=owner)


def block(url: str, todos: str, slug: str, main: str, go: str) -> None:
    """Report ``slug`` blocked (the same report as every other racer)."""
    store = open_store(url)
    e = engine(store, todos, f"blocker-{os.getpid()}")
    report = BlockedReport(
        Reason.EXTERNAL, main, Evidence(diagnostic="seen by the orchestrator"), detail="dup"
    )
    wait_for(go)
    try:
        out = e.block(slug, report)
        assert out.transition is not None
        assert out.blocked is not None
        say("OK", out.transition.event, out.transition.seq, out.blocked.follow_up_state)
    except MergegateError as err:
        say("ERR", type(err).__name__, err)


def roadmap(path: str, go: str, *slugs: str) -> None:
    """Add each slug to the roadmap at ``path``."""
    wait_for(go)
    for slug in slugs:
        added = add_roadmap_entry(Path(path), slug, group="race", description=f"entry {slug}")
        say("OK", slug, added)


def integrate(url: str, repo: str, todos: str, go: str) -> None:
    """Apply candidates until none is pending; wait and retry while the lease is held."""
    store = open_store(url)
    owner = f"integrator-{os.getpid()}"
    e = engine(store, todos, owner)
    applier = GitApplier(Path(repo))
    wait_for(go)
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 1.0:
        try:
            out = e.apply_next(applier, owner=owner)
        except LeaseHeld:
            say("LEASE_HELD")
            time.sleep(0.005)
            continue
        if out is None:
            time.sleep(0.01)
            continue
        idle_since = time.monotonic()
        say("OK", out.candidate.key.slug, out.candidate.key.sha, out.state)


def resume(url: str, todos: str, slug: str, new_sha: str, go: str) -> None:
    """The operator: force-resume ``slug`` at ``new_sha``."""
    store = open_store(url)
    e = engine(store, todos, f"operator-{os.getpid()}")
    wait_for(go)
    try:
        out = e.resume(slug, new_sha=new_sha, force_reason="operator race test")
        say("OK", out.candidate.key.sha, out.state)
    except MergegateError as err:
        say("ERR", type(err).__name__, err)


def apply_one(url: str, repo: str, todos: str, slug: str, go: str) -> None:
    """The integrator: apply ``slug`` as soon as it is ready, for up to two seconds."""
    store = open_store(url)
    owner = f"integrator-{os.getpid()}"
    e = engine(store, todos, owner)
    applier = GitApplier(Path(repo))
    wait_for(go)
    deadline = time.monotonic() + 2.0
    while True:
        try:
            out = e.apply(slug, applier, owner=owner)
        except (IllegalTransition, LeaseHeld) as err:
            if time.monotonic() > deadline:
                say("ERR", type(err).__name__, err)
                return
            time.sleep(0.002)
            continue
        say("OK", out.candidate.key.sha, out.state)
        return


def apply_stalling(url: str, repo: str, todos: str, slug: str, go: str) -> None:
    """An integrator with a 0.3 s lease and no heartbeat, stalled in its check until released.

    The check ends when the file ``GO.release`` appears (or after 60 s): a fixed sleep let
    a loaded machine finish the check before the parent recovered the lease.
    """
    from datetime import timedelta

    from mergegate.apply import CheckSpec

    store = open_store(url)
    owner = f"stalling-{os.getpid()}"
    e = engine(store, todos, owner)
    e.lease_ttl = timedelta(seconds=0.3)
    stall = (
        "import os, sys, time\n"
        "end = time.monotonic() + 60\n"
        "while not os.path.exists(sys.argv[1]) and time.monotonic() < end:\n"
        "    time.sleep(0.01)\n"
    )
    check = CheckSpec("slow", (sys.executable, "-c", stall, f"{go}.release"))
    applier = GitApplier(Path(repo), checks=(check,), heartbeat_every=30)
    wait_for(go)
    try:
        out = e.apply(slug, applier, owner=owner)
        say("OK", out.candidate.key.sha, out.state)
    except MergegateError as err:
        say("ERR", type(err).__name__, err)


def hold_lock(path: str, seconds: str, go: str) -> None:
    """Hold a SQLite write lock (BEGIN IMMEDIATE) on ``path`` until ``GO.release`` appears.

    ``seconds`` only bounds the hold if the parent never releases it: a fixed hold let
    a loaded machine reach the contended write after the lock was already gone.
    """
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    wait_for(go)
    say("LOCKED")
    end = time.monotonic() + float(seconds)
    while not os.path.exists(f"{go}.release") and time.monotonic() < end:
        time.sleep(0.01)
    conn.execute("ROLLBACK")
    say("RELEASED")


COMMANDS: dict[str, Any] = {
    "block": block,
    "roadmap": roadmap,
    "integrate": integrate,
    "resume": resume,
    "apply": apply_one,
    "apply-stalling": apply_stalling,
    "hold-lock": hold_lock,
}


def main(argv: list[str]) -> int:
    COMMANDS[argv[0]](*argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
