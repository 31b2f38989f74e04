"""``mergegate run``: the integrator loop as a command (see ``runloop.py``)."""

from __future__ import annotations

import os
import socket
import sys

import click

from mergegate.apply import lease_owner

from .app import cli, session_of
from .errors import EXIT_BLOCKED, EXIT_OK
from .output import emit
from .presence import Presence
from .progress import PlainReporter, reporter_for, summary
from .runloop import MAX_CONCURRENCY, Loop, Turn, apply_next, chain_step

__all__ = ["run"]


@cli.command()
@click.option("--once", is_flag=True, help="Drain the queue and exit (3 if any candidate blocked).")
@click.option(
    "--poll",
    type=click.FloatRange(min=0.05, max=3600),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help=(
        "The longest an idle integrator waits on the change feed (a submit wakes it at once) "
        "before it recovers dead applies and looks again."
    ),
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1, max=MAX_CONCURRENCY),
    default=1,
    show_default=True,
    metavar="N",
    help=f"Test up to N queued candidates at once, as a speculative chain (1..{MAX_CONCURRENCY}).",
)
@click.pass_context
def run(ctx: click.Context, once: bool, poll: float, concurrency: int) -> int:
    """Integrate candidates one at a time in queue order, until stopped (--once: drained).

    With --concurrency N above 1, up to N candidates are tested at once, each
    merged onto the one before it; main still moves in queue order, and the
    result is the serial one. A stop then requeues every link not yet settled.

    Recovers expired applies, and at once those of dead integrators on this
    host, before the first candidate and between candidates. SIGINT, SIGTERM
    or SIGHUP cuts a running check short and requeues its candidate at its
    place (only a third interrupted apply in a row blocks it as
    apply_interrupted); any other step is finished first. Then run prints
    its summary, removes its worktrees and exits. Exit 0 if every candidate
    it handled integrated, 3 if any blocked.
    """
    s = session_of(ctx)
    if s.actor_defaulted:
        # The log says which integrator made each move, not which login started it.
        s.actor = f"run:{socket.gethostname()}:{os.getpid()}"
    s.engine()
    # A person's edit in the checked-out main, even at start (a restart), is waited out.
    applier = s.applier(checkout_waits=True)
    # With --json, stdout carries the one summary document; progress goes to stderr.
    reporter = PlainReporter(sys.stderr) if s.json else reporter_for()
    loop = Loop(
        s,
        applier,
        lease_owner(s.actor),
        reporter,
        poll=poll,
        turn=Turn(s.repository().state_dir / "run.turn"),
        step=chain_step if concurrency > 1 else apply_next,
        concurrency=concurrency,
    )
    # Held for the whole run: `apply SLUG` beside it answers instead of racing it.
    presence = Presence(s.repository().state_dir)
    try:
        tally = loop.run(once=once)
    finally:
        presence.close()
        # The loop's own: it takes a new one when the configuration changes.
        loop.applier.close()
    code = EXIT_BLOCKED if tally.blocked else EXIT_OK
    result = {
        "handled": tally.handled,
        "integrated": tally.integrated,
        "blocked": tally.blocked,
        "recovered": tally.recovered,
        "released": tally.released,
        "seconds": round(tally.seconds, 3),
        "busy_seconds": round(tally.busy, 3),
    }
    return emit(s.json, s.command, result, summary(tally), code)
