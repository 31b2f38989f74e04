"""Human output: aligned tables and short text blocks, built from the same records as ``--json``.

User text (branch names, reasons, details) is printed through ``one_line``, so
no value can start a line of its own or smuggle a terminal escape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from mergegate.followups.text import one_line
from mergegate.statemachine import (
    BlockedRecord,
    Candidate,
    Lease,
    Occurrence,
    Outcome,
    State,
    Transition,
)
from mergegate.statemachine._validation import short_sha

from .columns import table
from .listing import QueueRow, short_span
from .payload import stamp

__all__ = [
    "blocked_table",
    "evidence_lines",
    "followups_table",
    "history_table",
    "key_text",
    "outcome_text",
    "queue_table",
    "show_text",
    "table",
]


_TAIL_LINES = 5


def key_text(c: Candidate) -> str:
    return f"{c.key.slug} ({one_line(c.key.branch)}@{short_sha(c.key.sha)})"


def _short_time(value: datetime | None) -> str:
    text = stamp(value)
    return "-" if text is None else text[:19].replace("T", " ")


def outcome_text(o: Outcome) -> str:
    """One line for the move (or the no-op), then the guidance when the candidate is blocked."""
    c, t = o.candidate, o.transition
    if t is None:
        head = f"{key_text(c)} is unchanged: {c.state.value} (seq {c.seq})"
    else:
        source = "new" if t.source is None else t.source.value
        head = f"{key_text(c)}: {t.event.value}, {source} -> {t.dest.value} (seq {t.seq})"
        if t.reason is not None:
            head += f": {one_line(t.reason)}"
    lines = [head]
    if o.blocked is not None:
        b = o.blocked
        lines.append(
            f"follow-up: {b.follow_up_slug} ({b.follow_up_state.value}), "
            f"reason {b.reason.value}, occurrences {b.occurrences}"
        )
    now = _where_now(c)
    if now is not None and o.guidance is None:
        lines.append(now)
    text = "\n".join(lines) + "\n"
    if o.guidance is not None:
        text += "\n" + o.guidance.text
    return text


def _where_now(c: Candidate) -> str | None:
    """Where the candidate is now and what comes next, for the states guidance does not cover."""
    slug = c.key.slug
    match c.state:
        case State.PENDING | State.RETRY:
            return f"now: {c.state.value}, queued for an apply; next: mergegate apply {slug}"
        case State.APPLYING:
            return "now: applying, under the integration lease"
        case State.INTEGRATED:
            return "now: integrated into main; nothing more to do"
    return None


def lease_line(lease: Lease | None, gone: bool, now: datetime) -> str:
    """``show`` of a leased candidate: who holds its lease, and ``recover`` when nobody can.

    ``gone`` says the holder's process is certainly dead (same host, pid gone).
    A candidate left applying by a killed integrator otherwise looks like one
    being applied, and only ``recover`` moves it on.
    """
    if lease is None:
        return "integrator: no lease covers it; next: mergegate recover\n"
    owner = one_line(lease.owner)
    if gone:
        return f"integrator: {owner} is gone (no such process); next: mergegate recover\n"
    until = _short_time(lease.expires_at)
    if lease.expires_at <= now:
        return (
            f"integrator: {owner}, lease expired {until} UTC; "
            "if it is not running, next: mergegate recover\n"
        )
    return f"integrator: {owner}, lease until {until} UTC\n"


def queue_table(rows: Sequence[QueueRow], now: datetime) -> str:
    """``list``: the candidates in queue order; POS is the queue position, SLOT the chain link
    in flight, ELAPSED the time in the current state, ETA the estimated end of the apply."""
    if not rows:
        return "no candidates\n"
    body = [
        (
            "-" if r.position is None else str(r.position),
            "-" if r.slot is None else str(r.slot),
            r.candidate.key.slug,
            r.candidate.key.branch,
            short_sha(r.candidate.key.sha),
            r.candidate.state.value,
            str(r.candidate.seq),
            _short_time(r.candidate.updated_at),
            "-" if r.elapsed is None else short_span(r.elapsed),
            "-" if r.eta is None else f"~{short_span(r.eta - now)}",
            r.waiting_for or "-",
        )
        for r in rows
    ]
    headers = ("POS", "SLOT", "SLUG", "BRANCH", "SHA", "STATE", "SEQ", "UPDATED (UTC)")
    return table((*headers, "ELAPSED", "ETA", "WAITING FOR"), body)


def history_table(
    entries: Sequence[Transition],
    occurrences: Sequence[Occurrence | None] = (),
    *,
    slugs: Mapping[int, str] | None = None,
) -> str:
    """The moves, oldest first; under each block, the evidence that occurrence recorded.

    With ``slugs`` (``history --all``), a SLUG column names each entry's candidate.
    """
    if not entries:
        return "no transitions\n"
    named = slugs is not None
    rows = [
        (
            str(t.candidate_id),
            *([(slugs or {}).get(t.candidate_id, "?")] if named else []),
            str(t.seq),
            _short_time(t.at),
            t.event.value,
            "new" if t.source is None else t.source.value,
            t.dest.value,
            short_sha(t.sha),
            t.actor,
            t.reason or "",
        )
        for t in entries
    ]
    headers = ("CAND", *(["SLUG"] if named else []), "SEQ", "AT (UTC)", "EVENT", "FROM", "TO")
    text = table((*headers, "SHA", "ACTOR", "NOTE"), rows)
    if not any(o is not None for o in occurrences):
        return text
    lines = text.splitlines()
    out = [lines[0]]
    for line, occurrence in zip(lines[1:], occurrences, strict=True):
        out.append(line)
        if occurrence is not None:
            out.append(f"    blocked, occurrence {occurrence.number}:")
            out.extend(f"  {ln}" for ln in _evidence_lines(occurrence))
    return "\n".join(out) + "\n"


def followups_table(rows: Sequence[tuple[BlockedRecord, str | None]]) -> str:
    """One follow-up a line: its candidate, its state, and whether it is resolved (and why not)."""
    if not rows:
        return "no follow-ups\n"
    cells = [
        (
            b.follow_up_slug,
            f"{b.key.slug}@{short_sha(b.key.sha)}",
            b.status,
            b.follow_up_state.value,
            str(b.occurrences),
            "yes" if why is None else f"no: {why}",
        )
        for b, why in rows
    ]
    return table(("FOLLOW-UP", "CANDIDATE", "STATUS", "TODO", "SEEN", "RESOLVED"), cells)


def blocked_table(records: Sequence[BlockedRecord]) -> str:
    if not records:
        return "no blocked outcomes\n"
    rows = [
        (
            _short_time(b.last_blocked_at),
            b.key.slug,
            short_sha(b.key.sha),
            b.reason.value,
            b.status,
            str(b.occurrences),
            f"{b.follow_up_slug} ({b.follow_up_state.value})",
        )
        for b in records
    ]
    return table(
        ("LAST BLOCKED (UTC)", "SLUG", "SHA", "REASON", "STATUS", "SEEN", "FOLLOW-UP"), rows
    )


def _evidence_lines(occurrence: Occurrence) -> list[str]:
    r, e = occurrence.report, occurrence.report.evidence
    lines = [f"  reason:     {r.reason.value} against main {short_sha(r.main_sha)}"]
    if r.detail is not None:
        lines.append(f"  detail:     {one_line(r.detail)}")
    if e.conflicted_paths:
        lines.append(f"  conflicts:  {one_line(', '.join(e.conflicted_paths))}")
    for check in e.checks:
        status = "timed out" if check.timed_out else f"exit {check.exit_code}"
        lines.append(f"  check:      {one_line(check.name)}: {status}")
        if check.failed:
            # The end of the output is where a failure shows; input.md has all of it.
            tail = [ln for ln in check.output_tail.splitlines() if ln.strip()][-_TAIL_LINES:]
            lines.extend(f"              | {one_line(ln)}" for ln in tail)
    if e.diagnostic is not None:
        lines.append(f"  diagnostic: {one_line(e.diagnostic)}")
    if e.main_attempts:
        lines.append(f"  main tried: {', '.join(short_sha(s) for s in e.main_attempts)}")
    if e.files:
        lines.append(f"  files:      {one_line(', '.join(e.files))}")
    if e.lease_owner is not None:
        lines.append(f"  lease:      {one_line(e.lease_owner)} since {_short_time(e.lease_since)}")
    return lines


def evidence_lines(occurrence: Occurrence) -> list[str]:
    """The named failure of one occurrence as ``show`` prints it: reason, paths, checks, tails."""
    return _evidence_lines(occurrence)


def show_text(
    o: Outcome, occurrences: Sequence[Occurrence] = (), past: Sequence[BlockedRecord] = ()
) -> str:
    """The candidate as a block of ``name: value`` lines, every occurrence of its current block
    (oldest first, each with its evidence), then its guidance.

    ``past`` is every blocked outcome of the slug, newest first; those that are
    not the current one are listed as earlier follow-ups.
    """
    c = o.candidate
    lines = [
        f"slug:       {c.key.slug}",
        f"branch:     {one_line(c.key.branch)}",
        f"sha:        {short_sha(c.key.sha)}",
        f"state:      {c.state.value}",
        f"seq:        {c.seq}",
        f"submitted:  {_short_time(c.submitted_at)} UTC",
    ]
    if o.transition is not None:
        t = o.transition
        note = f" ({one_line(t.reason)})" if t.reason is not None else ""
        lines.append(
            f"last move:  {t.event.value} at {_short_time(t.at)} UTC by {one_line(t.actor)}{note}"
        )
    if o.blocked is not None:
        b = o.blocked
        lines.append(f"follow-up:  {b.follow_up_slug} ({b.follow_up_state.value})")
        if b.follow_up_error is not None:
            lines.append(f"  error:    {one_line(b.follow_up_error)}")
        if b.previous_follow_up is not None:
            lines.append(f"  previous: {b.previous_follow_up}")
        lines.append(
            f"blocked:    {b.occurrences} time(s), last {_short_time(b.last_blocked_at)} UTC"
        )
    current = None if o.blocked is None else o.blocked.id
    earlier = [b for b in past if b.id != current]
    if earlier:
        lines.append("earlier follow-ups:")
        lines.extend(
            f"  {b.follow_up_slug} ({b.reason.value}, {b.status}, sha {short_sha(b.key.sha)})"
            for b in earlier
        )
    for occurrence in occurrences:
        lines.append(
            f"occurrence {occurrence.number} at {_short_time(occurrence.at)} UTC "
            f"(seq {occurrence.seq}):"
        )
        lines.extend(_evidence_lines(occurrence))
    text = "\n".join(lines) + "\n"
    if o.guidance is not None:
        text += "\n" + o.guidance.text
    return text
