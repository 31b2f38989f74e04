"""``[[notify]]``: run a command when a candidate is blocked or integrated.

Each command is a hook subscribed to a move into its states. It gets the
outcome as one JSON document on stdin (the ``result`` of ``--json``, with
``notify`` naming the state), runs with a time limit, and can never affect the
move: the move is committed before it starts, and whatever it does (fail,
hang, crash) is logged as one warning line and otherwise ignored.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mergegate.statemachine import Outcome, State, Subscription, on_enter

from .config import NotifyConfig
from .payload import outcome_json

__all__ = ["notify_hooks", "run_notify"]

_LOG = logging.getLogger("mergegate.notify")


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
    """Run ``spec`` with ``outcome`` on stdin; ``None`` if it exited 0, else what went wrong.

    ``keepalive`` is called every ``every`` seconds while the command runs:
    ``run`` renews its lease there, so a slow notification never lets the
    lease of the integrator that is running it expire.
    """
    document = dict(outcome_json(outcome), notify=outcome.state.value)
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


def _hook(spec: NotifyConfig, cwd: Path, keepalive: Callable[[], None] | None) -> object:
    def notify(outcome: Outcome) -> Outcome:
        try:
            problem = run_notify(spec, outcome, cwd, keepalive)
        except Exception as err:  # a notification must never fail the move
            problem = f"failed: {err}"
        if problem is not None:
            _LOG.warning("notify %s for %s: %s", spec.argv[0], outcome.candidate.key.slug, problem)
        return outcome

    return notify


def notify_hooks(
    specs: Sequence[NotifyConfig], cwd: Path, keepalive: Callable[[], None] | None = None
) -> list[Subscription]:
    """One subscription per command and state it is configured for."""
    return [
        on_enter(State(state), _hook(spec, cwd, keepalive), name=f"notify:{spec.argv[0]}")  # type: ignore[arg-type]
        for spec in specs
        for state in spec.on
    ]
