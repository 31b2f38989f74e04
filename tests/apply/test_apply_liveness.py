"""Liveness of a lease's owner: host, pid and start time, against real processes."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

from mergegate.apply import holder_gone, lease_owner
from mergegate.apply.liveness import Holder, parse_owner, start_time, this_host
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import CandidateKey, Engine, State


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_own_owner_string_names_this_process_and_is_alive() -> None:
    """lease_owner names this host, pid and start time, and this process is not gone."""
    owner = lease_owner("cli:someone@example")
    holder = parse_owner(owner)
    assert holder == Holder(this_host(), os.getpid(), start_time(os.getpid()))
    assert not holder_gone(owner)


def test_a_dead_pid_on_this_host_is_gone() -> None:
    """A pid that runs nothing any more is gone, with or without a recorded start time."""
    pid = _dead_pid()
    assert holder_gone(f"x@{this_host()}:{pid}")
    assert holder_gone(f"x@{this_host()}:{pid}:12345")


def test_a_reused_pid_is_gone_when_its_start_time_differs() -> None:
    """A running pid with another start time than recorded is a reuse: the holder is gone."""
    started = start_time(os.getpid())
    assert started is not None
    assert holder_gone(f"x@{this_host()}:{os.getpid()}:{int(started) + 1}")


def test_other_hosts_and_unparsable_owners_are_never_gone() -> None:
    """Another host's owner, or an owner naming no pid, waits for the lease's expiry."""
    pid = _dead_pid()
    assert not holder_gone(f"x@not-{this_host()}:{pid}")
    assert not holder_gone("integrator-1")
    assert not holder_gone(f"x@{this_host()}")


def test_engine_recover_settles_an_abandoned_lease_before_it_expires(tmp_path: Path) -> None:
    """recover(abandoned=...) requeues a live lease whose holder is gone; without it, waits."""
    store = SQLiteStore(tmp_path / "db.sqlite3")
    engine = Engine(store, lease_ttl=timedelta(hours=1))
    engine.submit(CandidateKey("feature", "feature", "a" * 40))
    owner = f"x@{this_host()}:{_dead_pid()}"
    engine.start_apply("feature", owner=owner)
    assert engine.recover("b" * 40) == []
    settled = engine.recover("b" * 40, abandoned=lambda lease: holder_gone(lease.owner))
    assert [o.state for o in settled] == [State.PENDING]
    assert settled[0].transition is not None
    assert "its process is gone" in (settled[0].transition.reason or "")
    assert store.leases() == []
    store.close()
