"""``mergegate submit`` and ``withdraw``: a candidate enters the queue, or leaves it.

A submit at a new sha supersedes the old one; a withdraw from a block marks its
follow-up withdrawn. A supersede or a withdraw cancels the CI builds still open
for the work it replaces.
"""

from __future__ import annotations

import click

from mergegate.apply import resolve_candidate_sha
from mergegate.followups import mark_withdrawn
from mergegate.followups.text import one_line
from mergegate.statemachine import (
    CandidateKey,
    Event,
    InvalidInput,
    MergegateError,
    Outcome,
    State,
)
from mergegate.statemachine._validation import check_branch, check_slug, check_text

from .app import cli, session_of
from .errors import HeldByBlocked, UsageError
from .human import outcome_text
from .moveargs import EXPECTED_SEQ, IDEMPOTENCY, emit_outcome, fetched, git_of, key_text
from .output import emit
from .payload import outcome_json
from .session import Session

__all__ = ["submit", "withdraw"]


@cli.command()
@click.argument("slug")
@click.option(
    "--sha",
    default=None,
    help="The commit to integrate: its id or an abbreviation of at least 4 hex digits, "
    "contained in the branch (default: the branch's tip).",
)
@click.option("--branch", default=None, help="The candidate's branch (default: the slug).")
@IDEMPOTENCY
@click.option("--priority", is_flag=True, help="Put it first in the queue (needs --why).")
@click.option("--why", default=None, help="Why it goes first (logged; with --priority).")
@click.pass_context
def submit(
    ctx: click.Context,
    slug: str,
    sha: str | None,
    branch: str | None,
    idempotency_key: str | None,
    priority: bool,
    why: str | None,
) -> int:
    """Queue SLUG at SHA as pending. Submitting the same identity again is a no-op.

    The sha is resolved once, here, to the full commit id, through object ids
    only (never a ref name); that id is what is stored, shown and applied.
    Submitting SLUG on the same branch at a new sha while it is pending or retry
    supersedes the old sha (a logged move): the old one never integrates.
    With --priority --why TEXT it then goes first, as `mergegate promote` does.
    """
    s = session_of(ctx)
    check_slug(slug)
    branch = check_branch(branch if branch is not None else slug, field="--branch")
    if branch == s.config().main_branch:
        # main merged into itself is no change: it would "integrate" with nothing merged.
        raise InvalidInput(
            "--branch", branch, "that is the branch mergegate integrates into; submit a work branch"
        )
    key_text(idempotency_key, "--idempotency-key")
    if priority or why is not None:
        _priority_why(priority, why)
    git = git_of(s)
    remote = fetched(s, git, branch)
    full = resolve_candidate_sha(
        git, branch, sha, field="--sha", branch_field="--branch", remote=remote
    )
    key = CandidateKey(slug, branch, full)
    engine = s.engine()
    held = engine.store.candidate(slug)
    if (
        held is not None
        and held.key.branch == branch
        and held.key.sha != full
        and engine.table.rule(held.state, Event.SUPERSEDE) is not None
    ):
        # expected_seq: if the candidate moved since it was read (an apply took
        # it), the supersede is refused (exit 4) instead of replacing a sha in flight.
        outcome = engine.supersede(
            slug, new_sha=full, expected_seq=held.seq, idempotency_key=idempotency_key
        )
        _cancel_builds(s, slug, f"superseded by {full[:12]}")
    elif (
        held is not None
        and held.key != key
        and held.state in (State.BLOCKED, State.REMEDIATING)
        and idempotency_key is None
    ):
        # Name the commands that help, not only the moves (resume or withdraw).
        raise HeldByBlocked(slug, held.key, held.state.value)
    else:
        outcome = engine.submit(key, idempotency_key=idempotency_key)
    if priority and why is not None:
        return _promoted(s, outcome, why)
    return emit_outcome(s, outcome)


def _priority_why(priority: bool, why: str | None) -> None:
    """``--priority`` and ``--why`` go together, checked before anything is written."""
    if not priority:
        raise UsageError(
            "--why goes with --priority: say why the candidate goes first, or drop --why"
        )
    if why is None or not why.strip():
        raise InvalidInput("--why", why, "say why the candidate goes first (it is logged)")
    check_text(why, field="--why")


def _promoted(s: Session, outcome: Outcome, why: str) -> int:
    """Put the submitted candidate first, and print both the move and the promote."""
    from .controlview import control_json  # noqa: PLC0415  (only a priority submit)

    entry = s.engine().promote(outcome.candidate.key.slug, why=why, actor=s.actor)
    result = {**outcome_json(outcome), "promoted": control_json(entry)}
    text = outcome_text(outcome) + f"promoted {entry.slug}: first in the queue: {one_line(why)}\n"
    return emit(s.json, s.command, result, text)


@cli.command()
@click.argument("slug")
@click.option("--why", required=True, help="Why the candidate is withdrawn (logged).")
@IDEMPOTENCY
@EXPECTED_SEQ
@click.pass_context
def withdraw(
    ctx: click.Context,
    slug: str,
    why: str,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Take SLUG out of the queue (any state but applying), to withdrawn, logged with WHY.

    A blocked or remediating candidate's follow-up is marked withdrawn
    (state.yaml status: withdrawn). The slug is free for a new submit.
    """
    s = session_of(ctx)
    check_slug(slug)
    if not why.strip():
        raise UsageError("--why needs a reason: say why the candidate is withdrawn")
    key_text(why, "--why")
    key_text(idempotency_key, "--idempotency-key")
    engine = s.engine()
    outcome = engine.withdraw(
        slug, why=why, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    note = _withdraw_follow_up(s, outcome)
    _cancel_builds(s, slug, "withdrawn")
    code = emit_outcome(s, outcome)
    if note is not None:
        click.echo(f"mergegate: {note}", err=True)
    return code


def _cancel_builds(s: Session, slug: str, why: str) -> None:
    """Cancel the CI builds still open for ``slug``: their results no longer count."""
    from .cirunner import cancel_open_builds  # noqa: PLC0415  (only with builds to cancel)

    for problem in cancel_open_builds(s.config(), s.store(), slug, why):
        click.echo(f"mergegate: {problem}", err=True)


def _withdraw_follow_up(s: Session, outcome: Outcome) -> str | None:
    """Mark the withdrawn candidate's follow-up withdrawn; a failure is reported, not raised.

    The move is committed by now: like a hook, this cannot undo it.
    """
    record = s.store().blocked_record(outcome.candidate.key)
    if record is None or outcome.transition is None:
        return None
    try:
        marked = mark_withdrawn(s.config().todos, record.follow_up_slug, boundary=s.config().repo)
    except (MergegateError, OSError) as err:
        return f"follow-up {record.follow_up_slug} not marked withdrawn: {err}"
    if marked is None:
        return f"follow-up {record.follow_up_slug} has no todo folder yet; nothing to mark"
    return f"follow-up {record.follow_up_slug} marked withdrawn ({marked})"
