"""The status page as HTML, rendered on the server from the data of ``/api/status``.

One renderer serves both readers: the page a browser without JavaScript
gets, and the live part (``/?part=live``) the page's little script fetches
every few seconds and swaps in, so both show exactly the same text. Every
value goes through ``html.escape``: slugs, branches, notes and check output
are written by others.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from html import escape
from typing import Any

from .listing import short_span

__all__ = ["live_html", "page_html"]

Json = dict[str, Any]


def _e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def _time(value: str | None) -> str:
    """A stamp as ``2026-12-06 02:18:39`` (UTC), or ``-``."""
    return "-" if not value else value[:19].replace("T", " ")


def _span(seconds: int | float | None, prefix: str = "") -> str:
    return "-" if seconds is None else prefix + short_span(timedelta(seconds=seconds))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str) -> str:
    """An HTML table; the cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _integrator(i: Json) -> str:
    state = i["state"]
    words = {
        "alive": f"alive: {_e(i['owner'])} holds the lease since {_time(i['since'])} UTC, "
        f"renewed until {_time(i['expires_at'])} UTC",
        "down": f"DOWN: {_e(i['owner'])} stopped renewing its lease; gone since "
        f"{_time(i['since'])} UTC. Run <code>mergegate recover</code> or start "
        "<code>mergegate run</code>.",
        "idle": f"idle: no integrator holds the lease; last move {_time(i['since'])} UTC",
    }
    return f'<p class="integrator {_e(state)}" id="integrator">Integrator {words[state]}</p>'


def _controls(q: Json) -> str:
    """The pause and the drain in force, with who and why; nothing when the queue is open."""
    c = q.get("controls") or {}
    parts = []
    paused, draining = c.get("paused"), c.get("draining")
    if paused is not None:
        then = " The work in flight was asked back to the queue." if paused["requeue"] else ""
        parts.append(
            f'<p class="control paused" id="paused">Queue <b>PAUSED</b> by '
            f'<span class="actor">{_e(paused["actor"])}</span> since {_time(paused["at"])} UTC: '
            f'<span class="why">{_e(paused["why"])}</span>. Nothing new is applied until '
            f"<code>mergegate unpause</code>.{then}</p>"
        )
    if draining is not None:
        left = "DRAINED" if not q.get("queued") else f"DRAINING ({_e(q['queued'])} still queued)"
        parts.append(
            f'<p class="control draining" id="draining">Queue <b>{left}</b> by '
            f'<span class="actor">{_e(draining["actor"])}</span> since '
            f'{_time(draining["at"])} UTC: <span class="why">{_e(draining["why"])}</span>. '
            "No new candidate is admitted until <code>mergegate undrain</code>.</p>"
        )
    return "".join(parts)


def _queue(q: Json) -> str:
    rows = q["candidates"]
    if not rows:
        return '<p id="queue-empty">The queue is empty.</p>'
    cells = [
        (
            _e("-" if r["position"] is None else r["position"]),
            _e("-" if r["slot"] is None else r["slot"]),
            f'<span class="slug">{_e(r["slug"])}</span>',
            f'<span class="state {_e(r["state"])}">{_e(r["state"])}</span>',
            _e(_span(r["elapsed_seconds"])),
            _e(_span(r["eta_seconds"], "~")),
            _e(r["waiting_for"] or "-"),
            f"{_e(r['branch'])}@{_e(r['sha'][:12])}",
        )
        for r in rows
    ]
    typical = q["typical_apply_seconds"]
    note = (
        "ETA: no recent integration to estimate from."
        if typical is None
        else f"ETA from the median of the last {q['typical_apply_samples']} apply time(s): "
        f"{_span(typical)}."
    )
    headers = ("POS", "SLOT", "SLUG", "STATE", "ELAPSED", "ETA", "WAITING FOR", "BRANCH@SHA")
    return _table(headers, cells, "queue") + f'<p class="note">{_e(note)}</p>'


def _in_flight(q: Json) -> str:
    flying = [r for r in q["candidates"] if r["slot"] is not None]
    if not flying:
        return '<p id="flight-empty">Nothing is applying.</p>'
    cells = [
        (
            _e(r["slot"]),
            f'<span class="slug">{_e(r["slug"])}</span>',
            _e(_span(r["elapsed_seconds"])),
            _e(_span(r["eta_seconds"], "~")),
            _e(r["waiting_for"] or "-"),
        )
        for r in flying
    ]
    return _table(("SLOT", "SLUG", "ELAPSED", "ETA", "WAITING FOR"), cells, "flight")


def _blocked_one(b: Json) -> str:
    record = b["blocked"]
    parts = [
        f'<article class="blocked" id="blocked-{_e(b["slug"])}">',
        f"<h3>{_e(b['slug'])} <small>{_e(b['state'])} since {_time(b['since'])} UTC</small></h3>",
        f'<p>Reason: <b class="reason">{_e(record["reason"])}</b>, seen '
        f"{_e(record['occurrences'])} time(s); follow-up <code>{_e(record['follow_up_slug'])}"
        f"</code> ({_e(record['follow_up_state'])})</p>",
    ]
    if b["failure"]:
        parts.append('<h4>What failed</h4><pre class="failure">')
        parts.append(_e("\n".join(b["failure"])) + "</pre>")
    guidance = b["guidance"]
    if guidance is not None:
        parts.append(f'<h4>Next</h4><pre class="guidance">{_e(guidance["text"])}</pre>')
    for f in b["follow_up_files"]:
        opened = " open" if f["name"] == "input.md" else ""
        cut = " (cut)" if f["cut"] else ""
        parts.append(
            f"<details{opened}><summary>follow-up file {_e(f['name'])}{cut}</summary>"
            f'<pre class="todo">{_e(f["text"])}</pre></details>'
        )
    parts.append("</article>")
    return "".join(parts)


def _blocked(v: Json) -> str:
    held = v["blocked"]
    if not held:
        return '<p id="blocked-empty">Nothing is blocked.</p>'
    return "".join(_blocked_one(b) for b in held)


def _stats(s: Json) -> str:
    t = s["time_in_queue_seconds"]
    reasons = ", ".join(f"{_e(r)} {_e(n)}" for r, n in s["blocked_by_reason"].items()) or "none"
    lines = [
        f"<li>Integrated: <b>{len(s['integrated'])}</b>"
        f" ({_e(s['integrated_per_hour'])} per hour)</li>",
        f"<li>Time in queue: p50 <b>{_span(t['p50'])}</b>, p95 <b>{_span(t['p95'])}</b>"
        f" ({_e(t['count'])} integrated)</li>",
        f"<li>Blocked: {len(s['blocked'])} ({reasons})</li>",
        f"<li>Withdrawn: {len(s['withdrawn'])}; requeued: {len(s['requeued'])}; "
        f"superseded: {len(s['superseded'])}; flaky: {len(s['flaky'])}</li>",
    ]
    recent = [
        (
            f'<span class="slug">{_e(r["slug"])}</span>',
            _time(r["at"]),
            _span(r["time_in_queue_seconds"]),
        )
        for r in s["integrated"]
    ]
    table = (
        _table(("SLUG", "INTEGRATED (UTC)", "TIME IN QUEUE"), recent, "recent")
        if recent
        else '<p id="recent-empty">No integration in the last day.</p>'
    )
    return f'<ul class="stats">{"".join(lines)}</ul><h3>Recent integrations</h3>{table}'


def live_html(view: Json) -> str:
    """The part of the page that changes: everything under the header."""
    q = view["queue"]
    now = q["now"]
    return (
        f'<p class="now">As of <time id="as-of">{_time(now)}</time> UTC</p>'
        + _integrator(q["integrator"])
        + _controls(q)
        + '<section id="queue-section"><h2>Queue</h2>'
        + _queue(q)
        + '</section><section id="flight-section"><h2>In flight</h2>'
        + _in_flight(q)
        + '</section><section id="blocked-section"><h2>Blocked</h2>'
        + _blocked(view["blocked"])
        + '</section><section id="stats-section"><h2>Last 24 hours</h2>'
        + _stats(view["stats"])
        + "</section>"
    )


def page_html(view: Json, *, query: str, refresh_ms: int, cursor: int | None = None) -> str:
    """The whole page; ``query`` (``?token=...`` or empty) is kept on every link it makes.

    ``cursor`` is the change feed's head the page was rendered at: the script
    asks for the live part after it, and the server answers when the log moves.
    """
    links = " · ".join(
        f'<a href="/api/{name}{_e(query)}">/api/{name}</a>'
        for name in ("queue", "blocked", "stats", "status")
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>mergegate queue</title>"
        f'<link rel="stylesheet" href="/static/status.css{_e(query)}"></head>'
        f'<body data-refresh-ms="{refresh_ms}"'
        + ("" if cursor is None else f' data-cursor="{cursor}"')
        + "><header><h1>mergegate queue</h1>"
        '<p id="live-state" class="live-state">'
        "Static view: reload the page to see changes.</p></header>"
        f'<main id="live">{live_html(view)}</main>'
        f"<footer><p>JSON: {links}</p></footer>"
        f'<script src="/static/status.js{_e(query)}"></script>'
        "</body></html>\n"
    )
