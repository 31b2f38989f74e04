"""``mergegate remediate`` and ``resume``: a blocked candidate is worked on, then goes
back to the queue once its follow-up is resolved."""

from __future__ import annotations

import click

from mergegate.apply import resolve_candidate_sha
from mergegate.statemachine import FollowUpNotResolved, State
from mergegate.statemachine._validation import check_slug

from .app import cli, session_of
from .errors import UsageError
from .moveargs import EXPECTED_SEQ, IDEMPOTENCY, emit_outcome, fetched, git_of, key_text

__all__ = ["remediate", "resume"]


@cli.command()
@click.argument("slug")
@IDEMPOTENCY
@EXPECTED_SEQ
@click.pass_context
def remediate(
    ctx: click.Context, slug: str, idempotency_key: str | None, expected_seq: int | None
) -> int:
    """Move blocked SLUG to remediating: someone works on its follow-up."""
    s = session_of(ctx)
    check_slug(slug)
    key_text(idempotency_key, "--idempotency-key")
    outcome = s.engine().start_remediation(
        slug, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    return emit_outcome(s, outcome)


@cli.command()
@click.argument("slug")
@click.option(
    "--sha",
    "new_sha",
    default=None,
    help="The fixed commit: resolved as submit's --sha is, and contained in the "
    "candidate's branch (default: the branch's tip).",
)
@click.option(
    "--same-sha",
    is_flag=True,
    help="Retry the sha a conflict or a failed check blocked: the fix was outside the code "
    "(--force implies it).",
)
@click.option("--note", default=None, help="Why, in a few words; logged with the move.")
@click.option("--force", is_flag=True, help="Resume although the follow-up is not resolved.")
@click.option("--why", default=None, help="Why the resume is forced (required with --force).")
@IDEMPOTENCY
@EXPECTED_SEQ
@click.pass_context
def resume(
    ctx: click.Context,
    slug: str,
    new_sha: str | None,
    same_sha: bool,
    note: str | None,
    force: bool,
    why: str | None,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Move remediating SLUG to retry at its branch's tip once its follow-up is resolved.

    Without --sha the branch's current tip is taken, resolved to the full id. If
    that is the very sha a merge conflict or a failed check blocked, resume
    refuses unless --same-sha says the fix was outside the code.
    """
    from mergegate.followups.failure import CODE_REASONS  # noqa: PLC0415

    from .errors import SameShaRefused  # noqa: PLC0415

    s = session_of(ctx)
    check_slug(slug)
    if force and (why is None or not why.strip()):
        raise UsageError("--force needs --why TEXT saying why the follow-up is skipped")
    if why is not None and not force:
        raise UsageError("--why is only used with --force; add --force or drop --why")
    if same_sha and new_sha is not None:
        raise UsageError("--same-sha keeps the blocked sha; drop --sha, or drop --same-sha")
    key_text(why, "--why")
    key_text(note, "--note")
    if note is not None and not note.strip():
        raise UsageError("--note needs some text saying why")
    key_text(idempotency_key, "--idempotency-key")
    engine = s.engine()
    candidate = engine.get(slug)
    key = candidate.key
    if same_sha:
        full = key.sha
    else:
        # Resolved against the branch the candidate was submitted with: the fix
        # must be on it, as apply will require. No --sha: the branch's tip.
        git = git_of(s)
        remote = fetched(s, git, key.branch)
        full = resolve_candidate_sha(git, key.branch, new_sha, field="--sha", remote=remote)
    if full == key.sha and not (same_sha or force) and candidate.state is State.REMEDIATING:
        record = engine.show(slug).blocked
        if record is not None and record.reason in CODE_REASONS:
            # An unresolved follow-up is the first thing to fix: say that first.
            why_not = s.resolver().unresolved_reason(record)
            if why_not is not None:
                raise FollowUpNotResolved(key, record.follow_up_slug, why_not)
            raise SameShaRefused(slug, full, record.reason.value, key.branch, s.config().remote)
    outcome = engine.resume(
        slug,
        # Always the full id, even when unchanged: a retry with the same
        # idempotency key then carries the same payload as the first call.
        new_sha=full,
        force_reason=why if force else None,
        note=note,
        idempotency_key=idempotency_key,
        expected_seq=expected_seq,
    )
    return emit_outcome(s, outcome)
