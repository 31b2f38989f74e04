"""``mergegate start``, ``block`` and ``integrate``: an orchestrator that runs its own
apply reports each step of the path ``apply`` drives (docs/cli.md)."""

from __future__ import annotations

import attrs
import click

from mergegate.apply import resolve_sha
from mergegate.apply.applier import NULL_SHA
from mergegate.statemachine import Evidence, Reason
from mergegate.statemachine._validation import check_slug, short_sha

from .app import cli, session_of
from .errors import IntegrateRefused, UsageError
from .evidence import build_report, read_evidence
from .moveargs import EXPECTED_SEQ, IDEMPOTENCY, emit_outcome, git_of, key_text, main_now

__all__ = ["block", "integrate", "start"]


@cli.command()
@click.argument("slug")
@click.option("--owner", default=None, help="Who holds the integration lease (default: --actor).")
@IDEMPOTENCY
@EXPECTED_SEQ
@click.pass_context
def start(
    ctx: click.Context,
    slug: str,
    owner: str | None,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Take the integration lease and move SLUG to applying (for an external apply)."""
    s = session_of(ctx)
    check_slug(slug)
    key_text(owner, "--owner")
    key_text(idempotency_key, "--idempotency-key")
    outcome = s.engine().start_apply(
        slug, owner=owner or s.actor, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    return emit_outcome(s, outcome)


@cli.command()
@click.argument("slug")
@click.option(
    "--reason",
    required=True,
    type=click.Choice([r.value for r in Reason]),
    help="The reason code (docs/blocked-payload.md).",
)
@click.option("--detail", default=None, help="One or two sentences on what happened.")
@click.option(
    "--conflict-file",
    "conflict_files",
    multiple=True,
    metavar="PATH",
    help="A conflicted path, relative to the repository; repeatable.",
)
@click.option(
    "--evidence-file",
    default=None,
    metavar="FILE|-",
    help="The evidence as a JSON object (docs/blocked-payload.md); - reads stdin.",
)
@click.option("--main-sha", default=None, help="The main it was tried against (default: main now).")
@IDEMPOTENCY
@EXPECTED_SEQ
@click.pass_context
def block(
    ctx: click.Context,
    slug: str,
    reason: str,
    detail: str | None,
    conflict_files: tuple[str, ...],
    evidence_file: str | None,
    main_sha: str | None,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Record a blocked outcome for SLUG (from applying), or replay one (blocked, remediating)."""
    s = session_of(ctx)
    check_slug(slug)
    key_text(idempotency_key, "--idempotency-key")
    if main_sha is not None:
        main_sha = resolve_sha(git_of(s), main_sha, field="--main-sha")
    key_text(detail, "--detail")
    evidence = Evidence() if evidence_file is None else read_evidence(evidence_file)
    # The report is checked before the repository is asked for main, so bad
    # evidence is reported as such even where main cannot be read.
    report = build_report(
        reason,
        main_sha or NULL_SHA,
        detail=detail,
        conflict_files=conflict_files,
        evidence=evidence,
    )
    if main_sha is None:
        main_sha = main_now(s)
        if main_sha is None:
            raise UsageError(
                f"branch {s.config().main_branch!r} does not exist in {s.repository().root}; "
                "pass --main-sha SHA"
            )
        report = attrs.evolve(report, main_sha=main_sha)
    outcome = s.engine().block(
        slug, report, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    return emit_outcome(s, outcome)


@cli.command()
@click.argument("slug")
@click.option("--main-sha", required=True, help="The sha the external apply moved main to.")
@IDEMPOTENCY
@EXPECTED_SEQ
@click.pass_context
def integrate(
    ctx: click.Context,
    slug: str,
    main_sha: str,
    idempotency_key: str | None,
    expected_seq: int | None,
) -> int:
    """Record that an external apply advanced main to MAIN_SHA, which contains SLUG's sha."""
    s = session_of(ctx)
    check_slug(slug)
    key_text(idempotency_key, "--idempotency-key")
    repo, branch = s.repository(), s.config().main_branch
    full = resolve_sha(git_of(s), main_sha, field="--main-sha")
    current = repo.branch_sha(branch)
    if current != full:
        shown = "nothing" if current is None else short_sha(current)
        raise IntegrateRefused(
            main_sha, f"{branch!r} points at {shown}, not at it; report the sha {branch} has now"
        )
    engine = s.engine()
    candidate = engine.get(slug)
    if not repo.is_ancestor(candidate.key.sha, full):
        raise IntegrateRefused(
            main_sha,
            f"it does not contain the candidate's sha {short_sha(candidate.key.sha)}; "
            "report integrate only after main contains the candidate, else block",
        )
    outcome = engine.integrate(
        slug, main_sha=full, idempotency_key=idempotency_key, expected_seq=expected_seq
    )
    return emit_outcome(s, outcome)
