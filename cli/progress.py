"""What ``mergegate run`` shows while it works: a live line on a terminal, plain lines elsewhere.

On a terminal, ``rich`` draws one live status line (the candidate, the step, the
running check and its elapsed time) under the outcomes as they scroll by; it is
imported only here, and only when stdout is a terminal. Off a terminal (a log
file, a pipe, systemd's journal) every event is one plain line, flushed at once.
Every line starts with the UTC time it was printed at (``2026-12-06T02:20:35Z``).

With ``run --concurrency N`` several candidates are applying at once: each
reporter keeps them by slug, the live line names every candidate being tested,
and a link thrown away by its chain shows as ``requeued`` with the reason.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import IO, Any, Protocol

import attrs

from mergegate.statemachine import Event, Outcome, RunSummary, State
from mergegate.statemachine._validation import short_sha

__all__ = ["LiveReporter", "PlainReporter", "Reporter", "outcome_line", "reporter_for", "summary"]


class Reporter(Protocol):
    """Told what the loop does; shows it. None of its methods may raise."""

    def started(self, outcome: Outcome) -> None:
        """A candidate was claimed and moved to applying."""

    def step(self, step: str, detail: str | None) -> None:
        """The apply began a step: ``merge``, ``check`` (``detail`` is its name), ``move``."""

    def settled(self, outcome: Outcome) -> None:
        """A candidate's apply ended (integrated, blocked or requeued), or recovery settled one."""

    def note(self, text: str) -> None:
        """Anything else worth one line: idle, waiting for the lease, stopping."""

    def close(self) -> None:
        """Stop drawing; the summary follows."""


def outcome_line(outcome: Outcome, elapsed: float | None = None) -> str:
    """``<slug>: integrated main=<sha>`` or ``<slug>: blocked <reason>``, with the time taken."""
    c = outcome.candidate
    if c.state is State.INTEGRATED:
        entry = outcome.transition
        main = entry.main_sha if entry else None
        what = "integrated" + (f" main={short_sha(main)}" if main else "")
    elif outcome.blocked is not None:
        what = f"blocked {outcome.blocked.reason.value}"
    elif outcome.transition is not None and outcome.transition.event is Event.REQUEUE:
        # A give-back's stored reason starts with the word this line starts with:
        # say it once (the stored text is left as it is).
        reason = (outcome.transition.reason or "").removeprefix("requeued: ")
        what = "requeued" + (f" ({reason})" if reason else "")
    else:
        what = c.state.value
    took = "" if elapsed is None else f" ({elapsed * 1000:.0f} ms)"
    return f"{c.key.slug} {short_sha(c.key.sha)}: {what}{took}"


def summary(tally: RunSummary) -> str:
    """The closing line: what was handled, and how fast (per busy minute)."""
    rate = tally.per_busy_minute
    return (
        f"handled {tally.handled}: integrated {tally.integrated}, blocked {tally.blocked}; "
        f"recovered {tally.recovered}, released {tally.released}; "
        f"{tally.seconds:.2f} s, busy {tally.busy:.2f} s ({rate:.0f} per busy minute)\n"
    )


def stamp() -> str:
    """The UTC time a progress line is printed at, to the second: ``2026-12-06T02:20:35Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.define
class PlainReporter:
    """One plain line per event, flushed: for logs and pipes."""

    out: IO[str]
    #: When each candidate now applying was started, by slug, in start order.
    _since: dict[str, float] = attrs.field(factory=dict, init=False)

    def _line(self, text: str) -> None:
        self.out.write(f"{stamp()} {text}\n")
        self.out.flush()

    def started(self, outcome: Outcome) -> None:
        key = outcome.candidate.key
        self._since[key.slug] = time.monotonic()
        self._line(f"{key.slug} {short_sha(key.sha)}: applying")

    def step(self, step: str, detail: str | None) -> None:
        # Serial steps only (a chain's come from its threads and are not shown):
        # the one candidate applying is the one started last.
        if step == "check" and self._since:
            self._line(f"{next(reversed(self._since))}: check {detail}")

    def settled(self, outcome: Outcome) -> None:
        since = self._since.pop(outcome.candidate.key.slug, None)
        self._line(outcome_line(outcome, None if since is None else time.monotonic() - since))

    def note(self, text: str) -> None:
        self._line(text)

    def close(self) -> None:
        self.out.flush()


@attrs.define
class _Status:
    """The live line; rich renders it several times a second, so the elapsed time runs."""

    spinner: Any
    text: Any
    #: Every candidate now applying (a chain's links), or empty.
    slug: str = ""
    step: str = "starting"
    since: float = attrs.field(factory=time.monotonic)

    def __rich__(self) -> Any:
        took = time.monotonic() - self.since
        line = self.text.assemble(
            (self.slug or "mergegate run", "bold"),
            "  ",
            (self.step, "cyan"),
            "  ",
            (f"{took:.1f}s", "dim"),
        )
        self.spinner.update(text=line)
        return self.spinner


@attrs.define
class LiveReporter:
    """A live status line drawn by ``rich`` on a terminal, with the outcomes above it."""

    out: IO[str]
    _live: Any = attrs.field(init=False)
    _status: _Status = attrs.field(init=False)
    #: Candidates now applying, by slug, with their short sha and start time.
    _applying: dict[str, tuple[str, float]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        # rich is imported here only: a command that never draws never pays for it.
        from rich.console import Console  # noqa: PLC0415
        from rich.live import Live  # noqa: PLC0415
        from rich.spinner import Spinner  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        console = Console(file=self.out, highlight=False)
        self._status = _Status(Spinner("dots"), Text)
        self._live = Live(self._status, console=console, refresh_per_second=8, transient=True)
        self._live.start()

    def _show(self, slug: str | None, step: str) -> None:
        if slug is not None:
            self._status.slug = slug
        self._status.step = step
        self._status.since = time.monotonic()

    def _names(self) -> str:
        if len(self._applying) == 1:
            slug, (sha, _) = next(iter(self._applying.items()))
            return f"{slug} {sha}"
        return ", ".join(self._applying)

    def started(self, outcome: Outcome) -> None:
        key = outcome.candidate.key
        self._applying[key.slug] = (short_sha(key.sha), time.monotonic())
        many = len(self._applying) > 1
        self._show(self._names(), f"testing {len(self._applying)}" if many else "applying")

    def step(self, step: str, detail: str | None) -> None:
        self._show(None, f"check {detail}" if step == "check" else step)

    def settled(self, outcome: Outcome) -> None:
        state = outcome.candidate.state
        colour = {State.INTEGRATED: "green", State.PENDING: "yellow"}.get(state, "red")
        started = self._applying.pop(outcome.candidate.key.slug, None)
        line = outcome_line(outcome, None if started is None else time.monotonic() - started[1])
        self._live.console.print(f"{stamp()} {line}", style=colour, markup=False)
        if self._applying:
            self._show(self._names(), f"testing {len(self._applying)}")
        else:
            self._show("", "waiting for the next candidate")

    def note(self, text: str) -> None:
        self._live.console.print(f"{stamp()} {text}", markup=False)
        self._show("", text)

    def close(self) -> None:
        self._live.stop()


def reporter_for(out: IO[str] | None = None) -> Reporter:
    """A live reporter on a terminal, else a plain one (``out`` defaults to stdout)."""
    stream = out if out is not None else sys.stdout
    if stream.isatty():
        return LiveReporter(stream)
    return PlainReporter(stream)
