"""``mergegate approve SLUG --sha SHA --why TEXT``: an operator lets a candidate change the gate.

A candidate whose merge changes the configuration (``mergegate.toml`` or
``[tool.mergegate]``) is held as ``config_changed`` before any of its checks
run; this command logs the operator's approval of that exact sha, with who,
when and why, and moves a held candidate to ``remediating``, so that
``mergegate resume SLUG`` is the next step (see docs/configuration.md).
"""

from __future__ import annotations

import click

from mergegate.followups.text import one_line
from mergegate.statemachine import InvalidInput, State
from mergegate.statemachine._validation import check_sha, check_slug

from .app import cli, session_of
from .output import emit

__all__ = ["approve"]


@cli.command()
@click.argument("slug")
@click.option("--sha", required=True, help="The candidate's full sha, as read (40 or 64 hex).")
@click.option("--why", required=True, help="Why the configuration change is right (logged).")
@click.pass_context
def approve(ctx: click.Context, slug: str, sha: str, why: str) -> int:
    """Approve candidate SLUG, at exactly SHA, changing the integrator's configuration.

    SHA must be the candidate's current sha in full: an approval is for the
    change that was read, and a new sha of the branch needs one of its own.
    A candidate held as config_changed moves to remediating; then run
    `mergegate resume SLUG`. Approving the same sha again is a no-op.
    """
    s = session_of(ctx)
    # Checked before the store is opened: a refused approval writes nothing at all.
    check_slug(slug)
    try:
        check_sha(sha, field="--sha")
    except InvalidInput:
        # Not resolved as submit's --sha is: an approval is for the exact change that
        # was read, so it names it in full. The fix is a command, not an API.
        raise InvalidInput(
            "--sha",
            sha,
            "give the candidate's full sha, 40 or 64 lowercase hex digits, as the approve "
            f"line of `mergegate show {slug}` names it",
        ) from None
    if not why.strip():
        raise InvalidInput("--why", why, "say why the configuration change is right")
    engine = s.engine()
    before = engine.get(slug)
    earlier = engine.store.approval(slug, sha)
    approval = engine.approve(slug, sha=sha, why=why, actor=s.actor)
    after = engine.get(slug)
    result = {
        "slug": approval.slug,
        "sha": approval.sha,
        "why": approval.why,
        "actor": approval.actor,
        "at": approval.at.isoformat(),
        "changed": earlier is None,
        "state": after.state.value,
    }
    verb = "approved" if earlier is None else "already approved"
    # The reason and actor escaped, as withdraw's: the report stays one line.
    text = (
        f"{verb} {slug} at {approval.sha}: {one_line(approval.why)} "
        f"(by {one_line(approval.actor)} at {approval.at.isoformat()})\n"
    )
    if before.state is State.BLOCKED and after.state is State.REMEDIATING:
        text += f"next: mergegate resume {slug}\n"
    return emit(s.json, s.command, result, text)
