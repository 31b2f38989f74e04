"""``mergegate apply`` and ``recover``: mergegate's own apply of one candidate, and the
settling of applies whose lease expired or whose process died."""

from __future__ import annotations

import contextlib

import click

from mergegate.apply import GitApplier
from mergegate.apply.applier import NULL_SHA
from mergegate.apply.remote import NothingPushed
from mergegate.statemachine import MergegateError, RepositoryError, State
from mergegate.statemachine._validation import check_slug

from .app import cli, session_of
from .errors import EXIT_BLOCKED, EXIT_OK
from .human import outcome_text
from .listing import queue_listing
from .moveargs import emit_outcome, main_now
from .output import emit
from .payload import outcome_json
from .presence import integrator_up
from .recovery import recover_now
from .runsettle import Release
from .session import Session
from .standby import ordinary

__all__ = ["apply", "recover"]


@cli.command()
@click.argument("slug", required=False)
@click.pass_context
def apply(ctx: click.Context, slug: str | None) -> int:
    """Apply SLUG, or the queue's head (in queue order). Exit 3 if it ends blocked."""
    s = session_of(ctx)
    if slug is not None:
        check_slug(slug)
        beside = _beside_run(s, slug)
        if beside is not None:
            return beside
    engine, applier, owner = s.engine(), s.applier(), s.lease_owner()
    # With a remote: what developers pushed, and main as the server has it.
    applier.sync()
    try:
        if slug is None:
            outcome = engine.apply_next(applier, owner=owner)
        else:
            outcome = engine.apply(slug, applier, owner=owner)
    except RepositoryError as err:
        raise _given_back(s, applier, owner, err) from err
    if outcome is None:
        # A paused queue has no head to claim: say so (exit 4), not "nothing to apply".
        engine.controls().check_start()
        return emit(s.json, s.command, None, "nothing to apply: no pending or retry candidate\n")
    code = EXIT_BLOCKED if outcome.state is State.BLOCKED else EXIT_OK
    return emit_outcome(s, outcome, code)


def _given_back(
    s: Session, applier: GitApplier, owner: str, err: RepositoryError
) -> RepositoryError:
    """Put back what this apply held after ``err``, as ``run`` does; the error to raise.

    A held lock, a person's edit in the checked-out ``main``, a remote that
    could not be read before the push: the host's events, not the candidate's
    fault. The candidate goes back to the queue at once, uncounted (the host
    was busy), as ``run`` releases its own. Left applying, it waited out its
    lease, and ``recover`` then counted it as interrupted: the third such
    apply blocked an innocent candidate ``apply_interrupted``.
    """
    back: list[str] = []
    if ordinary(err):
        release = Release(
            s,
            s.engine(),
            applier,
            owner,
            lambda outcome: back.append(outcome.candidate.key.slug),
            isinstance(err, NothingPushed),
        )
        with contextlib.suppress(MergegateError):
            # Not settled now (the remote cannot say if a push landed): the lease's expiry.
            release(str(err), how="host")
    if back:
        named = ", ".join(back)
        return RepositoryError(
            err.repository,
            f"{err.problem}; {named} went back to the queue (the host's doing, not the "
            f"candidate's): run `mergegate apply {back[0]}` again once that is cleared",
        )
    return RepositoryError(
        err.repository,
        f"{err.problem}; a candidate this apply started stays applying "
        "until its lease expires, then `mergegate recover` settles it",
    )


def _beside_run(s: Session, slug: str) -> int | None:
    """With a ``run`` up on this host, answer ``apply SLUG`` instead of racing it.

    The integrator takes queued candidates by itself, so a printed NEXT line
    ``mergegate apply SLUG`` run beside it says where SLUG stands and exits
    0 (3 if the integrator already blocked it); ``None`` with no integrator up,
    or for a candidate it would not take (the caller applies it then).
    """
    if not integrator_up(s.repository().state_dir):
        return None
    engine = s.engine()
    candidate = engine.get(slug)
    rows = queue_listing(engine.store.candidates())
    position = next((pos for c, pos in rows if c.id == candidate.id), None)
    state = candidate.state
    if position is not None:
        text = f"{slug}: queued at position {position}; the integrator takes it\n"
    elif state is State.APPLYING:
        text = f"{slug}: the integrator is applying it now; see `mergegate show {slug}`\n"
    elif state is State.INTEGRATED:
        text = f"{slug}: already integrated by the integrator; see `mergegate show {slug}`\n"
    elif state is State.BLOCKED:
        return emit_outcome(s, engine.show(slug), EXIT_BLOCKED)
    else:
        return None
    result = {"slug": slug, "state": state.value, "position": position, "integrator": "run"}
    return emit(s.json, s.command, result, text)


@cli.command()
@click.pass_context
def recover(ctx: click.Context) -> int:
    """Settle every expired apply: integrate it if main contains it, else block it.

    An apply whose process is gone (same host, dead pid) is settled at once,
    without waiting for its lease to expire.

    Recovery holds main (git's lock, the one every apply moves it under) while
    it decides, so it never settles a candidate whose move is in flight; if a
    live mover holds main, it exits 4 and changes nothing.
    """
    s = session_of(ctx)
    engine = s.engine()
    main = main_now(s)
    stale_lock = None
    if main is None:
        outcomes = engine.recover(NULL_SHA)
    else:
        recovered = recover_now(s, lambda: main)
        outcomes, stale_lock = list(recovered.outcomes), recovered.stale_lock
    removed: list[str] = []
    cleanup_error = None
    try:
        removed = [str(p) for p in s.applier().cleanup_stale()]
    except MergegateError as err:
        cleanup_error = str(err)
    result = {
        "recovered": [outcome_json(o) for o in outcomes],
        "stale_lock_removed": stale_lock,
        "stale_worktrees_removed": removed,
        "cleanup_error": cleanup_error,
    }
    lines = [outcome_text(o) for o in outcomes] or ["no expired apply lease\n"]
    if stale_lock is not None:
        lines.insert(0, f"removed stale lock {stale_lock} of a dead mover\n")
    if removed:
        lines.append("".join(f"removed stale worktree {p}\n" for p in removed))
    if cleanup_error is not None:
        lines.append(f"worktree cleanup skipped: {cleanup_error}\n")
    return emit(s.json, s.command, result, "\n".join(lines))
