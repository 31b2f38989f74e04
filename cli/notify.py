"""``[[notify]]``: run a command on a candidate's move or on the integrator's presence.

Each command is a hook subscribed to the events its ``on`` names. It gets one
JSON document on stdin (cli/notice.py says what it holds), runs with a time
limit, and can never affect the move: the move is committed before it starts,
and whatever it does (fail, hang, crash) is logged as one warning line and
otherwise ignored. The integrator's events are not moves: whoever settles a
dead integrator's lease sends them (cli/recovery.py), through :func:`announce`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mergegate.statemachine import Event, Outcome, State, Subscription, on_enter, on_event

from .config import NotifyConfig
from .notice import NoticeSources, candidate_notice

__all__ = ["CANDIDATE_EVENTS", "announce", "notify_hooks", "run_command", "run_notify"]

_LOG = logging.getLogger("mergegate.notify")

#: The candidate events of ``NOTIFY_ON`` and the move behind each: a state entered,
#: or an event logged (a supersede stays ``pending``; a requeue may come from any
#: leased state), replays of an idempotent call included, as for any hook.
CANDIDATE_EVENTS: dict[str, State | Event] = {
    "blocked": State.BLOCKED,
    "integrated": State.INTEGRATED,
    "withdrawn": State.WITHDRAWN,
    "requeued": Event.REQUEUE,
    "superseded": Event.SUPERSEDE,
}


def _subscribe(event: str, fn: Callable[[Outcome], Outcome], name: str) -> Subscription:
    move = CANDIDATE_EVENTS[event]
    if isinstance(move, State):
        return on_enter(move, fn, name=name)
    return on_event(move, fn, name=name)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # The command runs in a session of its own, so its children go with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


#: Seconds between two calls of a notification's keepalive while it runs.
KEEPALIVE_EVERY = 1.0


def run_notify(
    spec: NotifyConfig,
    outcome: Outcome,
    cwd: Path,
    keepalive: Callable[[], None] | None = None,
    every: float = KEEPALIVE_EVERY,
) -> str | None:
    """Run ``spec`` with ``outcome``'s document (its state as the event) on stdin; see
    :func:`run_command`."""
    document = candidate_notice(outcome.state.value, outcome, None, datetime.now(UTC))
    return run_command(spec, document, cwd, keepalive, every)


def run_command(
    spec: NotifyConfig,
    document: Mapping[str, Any],
    cwd: Path,
    keepalive: Callable[[], None] | None = None,
    every: float = KEEPALIVE_EVERY,
) -> str | None:
    """Run ``spec`` with ``document`` on stdin; ``None`` if it exited 0, else what went wrong.

    ``keepalive`` is called every ``every`` seconds while the command runs:
    ``run`` renews its lease there, so a slow notification never lets the
    lease of the integrator that is running it expire.
    """
    payload = json.dumps(document, sort_keys=True).encode() + b"\n"
    argv: Sequence[str] = spec.argv
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", argv[0]] if spec.shell else list(argv),
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as err:
        return f"could not start: {err.strerror or err}"
    deadline = time.monotonic() + spec.timeout
    sent: bytes | None = payload
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            _stop(proc)
            return f"killed after {spec.timeout:g}s"
        try:
            # After a timeout communicate() goes on where it stopped; the input is sent once.
            proc.communicate(sent, timeout=min(left, every))
        except subprocess.TimeoutExpired:
            sent = None
            if keepalive is not None:
                keepalive()
            continue
        except OSError:
            # The command closed stdin without reading it all; its exit status decides.
            proc.wait()
        break
    if proc.returncode != 0:
        return f"exit code {proc.returncode}"
    return None


def _warn(spec: NotifyConfig, what: str, problem: str | None) -> None:
    if problem is not None:
        _LOG.warning("notify %s for %s: %s", spec.argv[0], what, problem)


def _hook(
    spec: NotifyConfig,
    event: str,
    cwd: Path,
    keepalive: Callable[[], None] | None,
    sources: NoticeSources | None,
) -> Callable[[Outcome], Outcome]:
    def notify(outcome: Outcome) -> Outcome:
        try:
            document = candidate_notice(event, outcome, sources, datetime.now(UTC))
            problem = run_command(spec, document, cwd, keepalive)
        except Exception as err:  # a notification must never fail the move
            problem = f"failed: {err}"
        _warn(spec, outcome.candidate.key.slug, problem)
        return outcome

    return notify


def notify_hooks(
    specs: Sequence[NotifyConfig],
    cwd: Path,
    keepalive: Callable[[], None] | None = None,
    sources: NoticeSources | None = None,
) -> list[Subscription]:
    """One subscription per command and candidate event it is configured for.

    ``sources`` lets a blocked notice carry its guidance, failure and evidence.
    """
    return [
        _subscribe(event, _hook(spec, event, cwd, keepalive, sources), f"notify:{spec.argv[0]}")
        for spec in specs
        for event in spec.on
        if event in CANDIDATE_EVENTS
    ]


def announce(
    specs: Sequence[NotifyConfig],
    event: str,
    document: Mapping[str, Any],
    cwd: Path,
    keepalive: Callable[[], None] | None = None,
) -> None:
    """Run every command whose ``on`` names ``event`` with ``document``; never raises."""
    for spec in specs:
        if event not in spec.on:
            continue
        try:
            problem = run_command(spec, document, cwd, keepalive)
        except Exception as err:  # an announcement must never stop the recovery that sent it
            problem = f"failed: {err}"
        _warn(spec, event, problem)
