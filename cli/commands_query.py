"""The commands that read: show, history, list, blocked, verify and diagram; and
``followups sync``, which drains the follow-up outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from mergegate.statemachine import (
    TABLE,
    BlockedRecord,
    Candidate,
    Occurrence,
    Reason,
    State,
)
from mergegate.statemachine._validation import check_slug

from .app import cli, session_of
from .controlview import control_json, controls_json, controls_text, promoted_text
from .errors import EXIT_OK, EXIT_UNEXPECTED, UsageError
from .flaky import flaky_json, flaky_text, for_slug
from .human import blocked_table, followups_table, history_table, queue_table, show_text
from .output import emit
from .payload import (
    blocked_json,
    occurrence_json,
    outcome_json,
    stamp,
    transition_json,
)
from .session import Session
from .since import parse_since
from .status import integrator_json, read_status, row_json

__all__ = [
    "blocked",
    "diagram",
    "done",
    "followups",
    "history",
    "list_",
    "list_followups",
    "show",
    "sync",
    "verify",
]

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


if TYPE_CHECKING:
    from mergegate.apply import RepositoryViolation


@cli.command()
@click.argument("slug")
@click.pass_context
def show(ctx: click.Context, slug: str) -> int:
    """SLUG's state, identity, follow-up, every occurrence of its block and current guidance."""
    s = session_of(ctx)
    check_slug(slug)
    outcome = s.reader().show(slug)
    store = s.store()
    occurrences = [] if outcome.blocked is None else store.occurrences(outcome.blocked.id)
    latest = occurrences[-1] if occurrences else None
    past = store.blocked_records(slug=slug)
    result = outcome_json(outcome)
    # In show, "transition" is the latest log entry, not a move this call made.
    del result["changed"]
    result["latest_evidence"] = None if latest is None else occurrence_json(latest)
    result["occurrences"] = [occurrence_json(o) for o in occurrences]
    result["blocked_history"] = [blocked_json(b) for b in past]
    wobbly = for_slug(store, slug)
    result["flaky"] = flaky_json(wobbly)
    controls = store.queue_controls()
    result["controls"] = controls_json(controls)
    promoted = [
        e for e in store.control_log(1, slug=slug) if e.at >= outcome.candidate.submitted_at
    ]
    result["promoted"] = control_json(promoted[-1]) if promoted else None
    text = show_text(outcome, occurrences, past) + flaky_text(wobbly)
    if promoted:
        text += f"promoted:   first in the queue {promoted_text(promoted[-1])}\n"
    if outcome.candidate.state in TABLE.active:
        text += controls_text(controls, len(store.queue()))
    return emit(s.json, s.command, result, text)


@cli.command()
@click.argument("slug", required=False)
@_SINCE
@click.option(
    "--all",
    "all_",
    is_flag=True,
    help="Every candidate's transitions, in the order they were made (give --since).",
)
@click.pass_context
def history(ctx: click.Context, slug: str | None, since: str | None, all_: bool) -> int:
    """Every transition of SLUG (of every candidate that held it), oldest first, each block
    with the evidence it recorded; or with --all, every candidate's, as they were made."""
    s = session_of(ctx)
    if all_:
        if slug is not None:
            raise UsageError("--all shows every candidate; drop --all or drop SLUG")
        return _history_all(s, _since(since))
    if slug is None:
        raise UsageError("name a SLUG, or give --all (with --since) for every candidate")
    check_slug(slug)
    when = _since(since)
    s.engine().get(slug)
    store = s.store()
    entries = store.history_of(slug, when)
    # A block entry and the occurrence it recorded share the sha and the seq.
    found: dict[tuple[str, int], Occurrence] = {}
    for record in store.blocked_records(slug=slug):
        for recorded in store.occurrences(record.id):
            found[(record.key.sha, recorded.seq)] = recorded
    matched = [found.get((t.sha, t.seq)) if t.dest is State.BLOCKED else None for t in entries]
    transitions = []
    for t, occurrence in zip(entries, matched, strict=True):
        row = transition_json(t)
        row["occurrence"] = None if occurrence is None else occurrence_json(occurrence)
        transitions.append(row)
    wobbly = for_slug(store, slug)
    result = {
        "slug": slug,
        "since": stamp(when),
        "transitions": transitions,
        "flaky": flaky_json(wobbly),
    }
    return emit(s.json, s.command, result, history_table(entries, matched) + flaky_text(wobbly))


# The beginning of time for `history --all` without --since: the whole log.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _history_all(s: Session, when: datetime | None) -> int:
    """``history --all``: the log over a window, every candidate, with each entry's slug."""
    s.reader()  # the same checks every command makes
    store = s.store()
    entries = store.log_since(_EPOCH if when is None else when)
    slugs = {c.id: c.key.slug for c in store.candidates_by_ids([t.candidate_id for t in entries])}
    transitions = [dict(transition_json(t), slug=slugs.get(t.candidate_id)) for t in entries]
    result = {"slug": None, "since": stamp(when), "transitions": transitions}
    return emit(s.json, s.command, result, history_table(entries, slugs=slugs))


@cli.command("list")
@click.option(
    "--state",
    "states",
    type=click.Choice([st.value for st in State]),
    multiple=True,
    help="Only candidates in this state; repeatable (any of them). Implies --all.",
)
@click.option("--all", "show_all", is_flag=True, help="Every candidate, finished ones included.")
@click.pass_context
def list_(ctx: click.Context, states: tuple[str, ...], show_all: bool) -> int:
    """The active queue in the order apply takes it, with each queued candidate's position.

    The ones applying come first (SLOT: their link in the chain), then the
    queued ones (pending, retry) numbered from 1, then those held by a block.
    ELAPSED is the time in the state, ETA the estimated end of the apply (from
    the median of recent apply times), WAITING FOR whom it waits on. --all
    adds the finished ones.
    """
    s = session_of(ctx)
    wanted: list[State] | None = None
    if states:
        wanted = sorted({State(v) for v in states}, key=list(State).index)
    elif not show_all:
        wanted = [st for st in State if st in TABLE.active]
    now = datetime.now(UTC)
    status = read_status(s.store(), now, list(State) if wanted is None else wanted)
    result = {
        "all": wanted is None,
        "states": None if wanted is None else [st.value for st in wanted],
        "now": stamp(now),
        "typical_apply_seconds": None
        if status.typical is None
        else int(status.typical.total_seconds()),
        "integrator": integrator_json(status.integrator),
        "candidates": [row_json(r, now) for r in status.rows],
        "controls": controls_json(status.controls),
    }
    text = queue_table(status.rows, now) + controls_text(status.controls, status.queued)
    down = status.integrator
    if down.state == "down":
        # The lease outlived its holder: say so under the rows that still read `applying`.
        text += (
            f"integrator DOWN: {down.owner} stopped renewing its lease; gone since "
            f"{stamp(down.since)}; run `mergegate recover` (or `mergegate run`)\n"
        )
    return emit(s.json, s.command, result, text)


@cli.command()
@_SINCE
@click.option(
    "--reason",
    type=click.Choice([r.value for r in Reason]),
    default=None,
    help="Only this reason code.",
)
@click.option(
    "--status",
    type=click.Choice(["open", "resumed"]),
    default=None,
    help="Only outcomes with this status (default: open, the ones blocking now).",
)
@click.option("--all", "all_", is_flag=True, help="Every outcome, resumed ones included.")
@click.pass_context
def blocked(
    ctx: click.Context, since: str | None, reason: str | None, status: str | None, all_: bool
) -> int:
    """The open blocked outcomes (blocked or remediating now), newest first."""
    s = session_of(ctx)
    if all_ and status is not None:
        raise UsageError("--all shows every status; drop --all or drop --status")
    when = _since(since)
    wanted = None if all_ else (status or "open")
    records = s.store().blocked_records(
        when, None if reason is None else Reason(reason), status=wanted
    )
    result = {
        "since": stamp(when),
        "reason": reason,
        "status": wanted,
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
        _fail_line(
            s,
            f"{len(done.failed)} follow-up(s) could not be created; fix the cause "
            "named above and run `mergegate followups sync` again",
        )
    return code


def _repository_violations(s: Session, listed: list[Candidate]) -> list[RepositoryViolation]:
    """The repository check of verify: main's mergegate merges against the integrated candidates."""
    # Only verify reads the repository; importing git plumbing at module level
    # would slow every query command's start-up (tests/cli/test_cli_startup.py).
    from mergegate.apply.audit import repository_violations  # noqa: PLC0415
    from mergegate.apply.git import Git  # noqa: PLC0415
    from mergegate.apply.plumbing import remote_main  # noqa: PLC0415

    config, repo = s.config(), s.repository()
    git = Git(repo.root)
    ref = f"refs/heads/{config.main_branch}"
    if repo.branch_sha(config.main_branch) is None:
        return []
    if config.remote is not None:
        # The remote's main is canonical; the local one may lag behind it.
        ref = remote_main(git, config.remote, ref, timeout=config.push_timeout)
    acknowledged = [a.sha for a in s.store().acknowledgements()]
    return repository_violations(git, ref, listed, s.store().log(), acknowledged)


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
