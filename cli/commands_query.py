"""The commands that read the queue and its log: show, history, list and blocked.

The follow-up commands are in ``commands_followups.py``, and verify and diagram,
which hold the log against the table, in ``commands_verify.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from mergegate.statemachine import TABLE, Lease, Occurrence, Outcome, Reason, State
from mergegate.statemachine._validation import check_slug

from .app import cli, session_of
from .controlview import control_json, controls_json, controls_text, promoted_text
from .errors import UsageError
from .flaky import flaky_json, flaky_text, for_slug
from .human import blocked_table, history_table, lease_line, queue_table, show_text
from .output import emit
from .payload import blocked_json, occurrence_json, outcome_json, stamp, transition_json
from .session import Session
from .since import parse_since
from .status import integrator_json, read_status, row_json

__all__ = ["blocked", "history", "list_", "show"]

_SINCE = click.option(
    "--since",
    default=None,
    metavar="DURATION|TIME",
    help="Only since then: a duration back from now (30m, 2h, 7d) or an ISO 8601 time (UTC).",
)


def _since(text: str | None) -> datetime | None:
    return None if text is None else parse_since(text, datetime.now(UTC))


def _covering_lease(leases: list[Lease], outcome: Outcome) -> Lease | None:
    """The lease a leased candidate moves under: its own, or the chain lease it joined.

    A chain's lease names no candidate; a link belongs to it when its latest
    entry (the ``start_apply``) ran under the lease's owner, as recovery reads it.
    """
    own = next((le for le in leases if le.candidate_id == outcome.candidate.id), None)
    joined = None if outcome.transition is None else outcome.transition.lease_owner
    if own is not None or joined is None:
        return own
    return next((le for le in leases if le.candidate_id is None and le.owner == joined), None)


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
    if outcome.candidate.state in TABLE.leased:
        # Only here: the apply package's import would slow every other show.
        from mergegate.apply.liveness import holder_gone  # noqa: PLC0415

        lease = _covering_lease(store.leases(), outcome)
        gone = lease is not None and holder_gone(lease.owner)
        text += lease_line(lease, gone, datetime.now(UTC))
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
