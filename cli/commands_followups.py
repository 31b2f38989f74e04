"""``mergegate followups sync|done|list``: the follow-up todos of blocked candidates.

``sync`` drains the follow-up outbox, ``done`` marks one follow-up resolved by
the configured rule, and ``list`` says which are resolved.
"""

from __future__ import annotations

import click

from mergegate.statemachine import BlockedRecord, Reason
from mergegate.statemachine._validation import check_slug

from .app import cli, session_of
from .errors import EXIT_OK, EXIT_UNEXPECTED, UsageError
from .human import followups_table
from .output import emit, fail_line
from .session import Session

__all__ = ["done", "followups", "list_followups", "sync"]


@cli.group()
@click.pass_context
def followups(ctx: click.Context) -> None:
    """Follow-up todos of blocked candidates."""
    session_of(ctx).command = f"followups {ctx.invoked_subcommand or ''}".strip()


@followups.command()
@click.pass_context
def sync(ctx: click.Context) -> int:
    """Drain the follow-up outbox: create every todo folder and roadmap entry still missing."""
    s = session_of(ctx)
    s.engine()
    from mergegate.followups import drain  # noqa: PLC0415  (the outbox: only sync drains it)

    done = drain(s.store(), s.followups())
    result = {
        "created": list(done.created),
        "failed": [{"follow_up_slug": f, "error": e} for f, e in done.failed],
    }
    lines = [f"created {slug}" for slug in done.created]
    lines += [f"FAILED  {slug}: {error}" for slug, error in done.failed]
    text = "\n".join(lines) + "\n" if lines else "nothing to sync: the outbox is empty\n"
    code = EXIT_UNEXPECTED if done.failed else EXIT_OK
    emit(s.json, s.command, result, text, code)
    if done.failed:
        fail_line(
            f"{len(done.failed)} follow-up(s) could not be created; fix the cause "
            "named above and run `mergegate followups sync` again",
        )
    return code


def _follow_up_record(session: Session, name: str) -> BlockedRecord:
    """The blocked outcome NAME names: a candidate slug (its current block), else a follow-up."""
    store = session.store()
    candidate = store.candidate(name)
    if candidate is not None:
        record = store.blocked_record(candidate.key)
        if record is not None:
            return record
    for record in store.blocked_records():
        if record.follow_up_slug == name:
            return record
    if candidate is not None:
        raise UsageError(f"candidate {name} has no follow-up: it was not blocked at its sha")
    raise UsageError(
        f"no follow-up and no candidate is named {name!r}; see mergegate followups list"
    )


@followups.command()
@click.argument("name")
@click.pass_context
def done(ctx: click.Context, name: str) -> int:
    """Mark the follow-up NAME (a follow-up slug or a candidate slug) resolved.

    What that takes is the configured resolved rule: state.yaml says done for
    the latest occurrence (the default), the folder is removed, or the roadmap
    entry is removed.
    """
    from mergegate.followups import mark_done  # noqa: PLC0415

    s = session_of(ctx)
    check_slug(name, field="follow-up or candidate")
    config = s.config()
    s.engine()  # the log, and the same checks every command makes
    record = _follow_up_record(s, name)
    rule = s.resolved_rule()
    action = mark_done(
        rule, record, todos_root=config.todos, roadmap=config.roadmap, boundary=config.repo
    )
    slug = record.key.slug
    left = s.resolver().unresolved_reason(record)
    result = {
        "follow_up_slug": record.follow_up_slug,
        "slug": slug,
        "rule": rule.value,
        "done": action,
        "resolved": left is None,
        "unresolved_reason": left,
    }
    text = f"follow-up {record.follow_up_slug} of {slug} is done ({rule.value}): {action}\n"
    if record.status == "open":
        sha = record.key.sha
        if record.reason is Reason.CONFIG_CHANGED and s.store().approval(slug, sha) is None:
            # An operator's approval settles this block, not the follow-up: resume refuses.
            text += f'next: mergegate approve {slug} --sha {sha} --why "..."\n'
        else:
            text += f"next: mergegate resume {slug}\n"
    return emit(s.json, s.command, result, text)


@followups.command("list")
@click.option("--all", "all_", is_flag=True, help="Also the follow-ups of resumed outcomes.")
@click.pass_context
def list_followups(ctx: click.Context, all_: bool) -> int:
    """Every follow-up of an open blocked outcome: its candidate, its state, whether resolved."""
    s = session_of(ctx)
    s.engine()
    resolver = s.resolver()
    records = s.store().blocked_records(status=None if all_ else "open")
    rows = []
    for record in records:
        why = resolver.unresolved_reason(record)
        rows.append((record, why))
    result = {
        "rule": s.resolved_rule().value,
        "follow_ups": [
            {
                "follow_up_slug": r.follow_up_slug,
                "slug": r.key.slug,
                "sha": r.key.sha,
                "status": r.status,
                "follow_up_state": r.follow_up_state.value,
                "occurrences": r.occurrences,
                "resolved": why is None,
                "unresolved_reason": why,
            }
            for r, why in rows
        ],
    }
    return emit(s.json, s.command, result, followups_table(rows))
