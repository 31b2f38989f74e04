"""The commands that read: show, history, list, blocked, verify and diagram; and
``followups sync``, which drains the follow-up outbox."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from mergegate.apply import Git, RepositoryViolation, remote_main, repository_violations
from mergegate.followups import drain
from mergegate.statemachine import Candidate, Reason, State, check_slug

from .app import cli, session_of
from .errors import EXIT_OK, EXIT_UNEXPECTED
from .human import blocked_table, candidate_table, history_table, show_text
from .output import emit
from .payload import (
    blocked_json,
    candidate_json,
    occurrence_json,
    outcome_json,
    stamp,
    transition_json,
)
from .session import Session
from .since import parse_since

__all__ = ["blocked", "diagram", "followups", "history", "list_", "show", "sync", "verify"]

_SINCE = click.option(
    "--since",
    default=None,
    metavar="DURATION|TIME",
    help="Only since then: a duration back from now (30m, 2h, 7d) or an ISO 8601 time (UTC).",
)


def _since(text: str | None) -> datetime | None:
    return None if text is None else parse_since(text, datetime.now(UTC))


def _fail_line(session: Session, message: str) -> None:
    click.echo(f"mergegate: error: {message}", err=True)


@cli.command()
@click.argument("slug")
@click.pass_context
def show(ctx: click.Context, slug: str) -> int:
    """SLUG's state, identity, follow-up, latest evidence and current guidance."""
    s = session_of(ctx)
    check_slug(slug)
    outcome = s.engine().show(slug)
    latest = None
    if outcome.blocked is not None:
        occurrences = s.store().occurrences(outcome.blocked.id)
        latest = occurrences[-1] if occurrences else None
    past = [b for b in s.store().blocked_records() if b.key.slug == slug]
    result = outcome_json(outcome)
    # In show, "transition" is the latest log entry, not a move this call made.
    del result["changed"]
    result["latest_evidence"] = None if latest is None else occurrence_json(latest)
    result["blocked_history"] = [blocked_json(b) for b in past]
    return emit(s.json, s.command, result, show_text(outcome, latest, past))


@cli.command()
@click.argument("slug")
@_SINCE
@click.pass_context
def history(ctx: click.Context, slug: str, since: str | None) -> int:
    """Every transition of SLUG (of every candidate that held it), oldest first."""
    s = session_of(ctx)
    check_slug(slug)
    when = _since(since)
    s.engine().get(slug)
    entries = s.store().history_of(slug, when)
    result = {
        "slug": slug,
        "since": stamp(when),
        "transitions": [transition_json(t) for t in entries],
    }
    return emit(s.json, s.command, result, history_table(entries))


@cli.command("list")
@click.option(
    "--state",
    type=click.Choice([st.value for st in State]),
    default=None,
    help="Only candidates in this state.",
)
@click.pass_context
def list_(ctx: click.Context, state: str | None) -> int:
    """The candidates, oldest submission first."""
    s = session_of(ctx)
    candidates = s.store().candidates(None if state is None else State(state))
    result = {"state": state, "candidates": [candidate_json(c) for c in candidates]}
    return emit(s.json, s.command, result, candidate_table(candidates))


@cli.command()
@_SINCE
@click.option(
    "--reason",
    type=click.Choice([r.value for r in Reason]),
    default=None,
    help="Only this reason code.",
)
@click.pass_context
def blocked(ctx: click.Context, since: str | None, reason: str | None) -> int:
    """The blocked outcomes, newest first."""
    s = session_of(ctx)
    when = _since(since)
    records = s.store().blocked_records(when, None if reason is None else Reason(reason))
    result = {
        "since": stamp(when),
        "reason": reason,
        "blocked": [blocked_json(b) for b in records],
    }
    return emit(s.json, s.command, result, blocked_table(records))


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
        _fail_line(
            s,
            f"{len(done.failed)} follow-up(s) could not be created; fix the cause "
            "named above and run `mergegate followups sync` again",
        )
    return code


def _repository_violations(s: Session, listed: list[Candidate]) -> list[RepositoryViolation]:
    """The repository check of verify: main's mergegate merges against the integrated candidates."""
    config, repo = s.config(), s.repository()
    git = Git(repo.root)
    ref = f"refs/heads/{config.main_branch}"
    if repo.branch_sha(config.main_branch) is None:
        return []
    if config.remote is not None:
        # The remote's main is canonical; the local one may lag behind it.
        ref = remote_main(git, config.remote, ref, timeout=120.0)
    return repository_violations(git, ref, listed, s.store().log())


@cli.command()
@click.pass_context
def verify(ctx: click.Context) -> int:
    """Replay every log against the table and compare with the stored state (exit 1 if not)."""
    s = session_of(ctx)
    engine, store = s.engine(), s.store()
    violations = engine.verify()
    problems = store.integrity_problems()
    listed = store.candidates()
    candidates = len(listed)
    entries = sum(1 for _ in store.log())
    repo_problems = _repository_violations(s, listed)
    ok = not violations and not problems and not repo_problems
    result = {
        "ok": ok,
        "candidates": candidates,
        "transitions": entries,
        "violations": [
            {"candidate_id": v.candidate_id, "seq": v.seq, "problem": v.problem} for v in violations
        ],
        "integrity_problems": problems,
        "repository_violations": [
            {"commit": v.commit, "candidate_sha": v.candidate_sha, "problem": v.problem}
            for v in repo_problems
        ],
    }
    if ok:
        text = f"ok: {candidates} candidate(s), {entries} log entries, no violations\n"
    else:
        text = "".join(f"VIOLATION {v}\n" for v in violations)
        text += "".join(f"INTEGRITY {p}\n" for p in problems)
        text += "".join(f"REPOSITORY {v}\n" for v in repo_problems)
    code = EXIT_OK if ok else EXIT_UNEXPECTED
    emit(s.json, s.command, result, text, code)
    if not ok:
        _fail_line(
            s,
            f"verify found {len(violations) + len(problems) + len(repo_problems)} problem(s), "
            "listed on "
            "stdout; inspect them with `mergegate history SLUG` before changing anything",
        )
    return code


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@click.option("--counts", is_flag=True, help="Label each edge with how often the log took it.")
@click.pass_context
def diagram(ctx: click.Context, fmt: str, counts: bool) -> int:
    """Draw the lifecycle from the transition table."""
    from .diagram import dot, mermaid  # noqa: PLC0415  (show, list... never draw)

    s = session_of(ctx)
    taken = s.store().edge_counts() if counts else None
    text = (mermaid if fmt == "mermaid" else dot)(counts=taken)
    edges = None
    if taken is not None:
        edges = [
            {
                "source": None if src is None else src.value,
                "event": ev.value,
                "dest": dst.value,
                "count": n,
            }
            for (src, ev, dst), n in sorted(
                taken.items(), key=lambda i: (i[0][0] or "", i[0][1].value, i[0][2].value)
            )
        ]
    return emit(s.json, s.command, {"format": fmt, "text": text, "counts": edges}, text)
