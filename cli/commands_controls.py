"""``mergegate pause|unpause|drain|undrain|promote``: an operator's controls of the whole queue.

Each is logged in the store with who (``--actor``) and why, and is in force
for every integrator sharing the store (docs/cli.md, "Queue controls"). A
control that does not fit the queue's state (unpause when not paused, a
promote of a blocked candidate) exits 4 with one line and writes nothing.
"""

from __future__ import annotations

import click

from mergegate.followups.text import one_line
from mergegate.statemachine import ControlEntry, InvalidInput
from mergegate.statemachine._validation import check_slug, check_text

from .app import cli, session_of
from .controlview import control_json
from .errors import UsageError
from .output import emit
from .payload import stamp

__all__ = ["drain", "pause", "promote", "undrain", "unpause"]


def _why(why: str | None, *, required: bool, command: str = "") -> str | None:
    """``--why`` checked before the store is opened: a refused control writes nothing."""
    if why is None:
        if required:
            raise UsageError(
                f"{command} needs --why TEXT: say why (it is logged with who and when)"
            )
        return None
    check_text(why, field="--why")
    if not why.strip():
        raise InvalidInput("--why", why, "say why in words (it is logged with who and when)")
    return why


def _done(ctx: click.Context, entry: ControlEntry, text: str) -> int:
    s = session_of(ctx)
    who = f"(by {one_line(entry.actor)} at {stamp(entry.at)})"
    why = "" if entry.why is None else f": {one_line(entry.why)}"
    return emit(s.json, s.command, control_json(entry), f"{text}{why} {who}\n")


_WHY = click.option("--why", help="Why (logged with who and when).")
_WHY_REQUIRED = click.option(
    "--why", metavar="TEXT", help="Required: why (logged with who and when)."
)


@cli.command()
@_WHY_REQUIRED
@click.option(
    "--requeue",
    is_flag=True,
    help="Give the work in flight back: a run applying requeues it at its place at its "
    "next safe point (never mid-move), as SIGTERM would, and stays up paused.",
)
@click.pass_context
def pause(ctx: click.Context, why: str | None, requeue: bool) -> int:
    """Freeze the queue for every integrator: nothing new is applied until `mergegate unpause`.

    What is in flight finishes; with --requeue it is given back instead:
    each `run` applying requeues its candidate in its check (or its chain's
    unsettled links) at its place, logging who paused and why; no follow-up.
    Submissions still queue. `run` stays up and goes on after the unpause.
    """
    reason = _why(why, required=True, command="pause")
    assert reason is not None
    s = session_of(ctx)
    entry = s.engine().pause(reason, requeue=requeue, actor=s.actor)
    then = "the work in flight was asked back" if requeue else "what is in flight finishes"
    return _done(ctx, entry, f"paused: nothing new is applied, {then}")


@cli.command()
@_WHY
@click.pass_context
def unpause(ctx: click.Context, why: str | None) -> int:
    """End the pause: the integrators take the queue's head again."""
    reason = _why(why, required=False)
    s = session_of(ctx)
    return _done(ctx, s.engine().unpause(reason, actor=s.actor), "unpaused")


@cli.command()
@_WHY_REQUIRED
@click.pass_context
def drain(ctx: click.Context, why: str | None) -> int:
    """Admit no new candidate while the queued ones go on being applied.

    `submit` of a new candidate exits 4 until `mergegate undrain`; candidates
    already admitted (queued, a supersede, a resume) go on. `list` says
    `drained` once the queue is empty: then the integrators can be stopped.
    """
    reason = _why(why, required=True, command="drain")
    assert reason is not None
    s = session_of(ctx)
    entry = s.engine().drain(reason, actor=s.actor)
    return _done(ctx, entry, "draining: no new candidate is admitted, the queued ones go on")


@cli.command()
@_WHY
@click.pass_context
def undrain(ctx: click.Context, why: str | None) -> int:
    """Admit new candidates again after `mergegate drain`."""
    reason = _why(why, required=False)
    s = session_of(ctx)
    return _done(ctx, s.engine().undrain(reason, actor=s.actor), "undrained: submissions admitted")


@cli.command()
@click.argument("slug")
@_WHY_REQUIRED
@click.pass_context
def promote(ctx: click.Context, slug: str, why: str | None) -> int:
    """Put queued candidate SLUG first: the next one any integrator takes.

    The candidates behind it keep their order. A `run` applying gives its
    work in flight back at its next safe point (a chain's unsettled links, or
    at --concurrency 1 the candidate in its check), logging the promotion,
    and takes SLUG first; a move of main is never cut short.
    """
    check_slug(slug)
    reason = _why(why, required=True, command="promote")
    assert reason is not None
    s = session_of(ctx)
    entry = s.engine().promote(slug, why=reason, actor=s.actor)
    return _done(ctx, entry, f"promoted {slug}: first in the queue")
