"""Flaky checks (failed, then passed on a retry) as ``show``, ``history`` and ``flaky`` print them.

Read from the store's ``check_builds`` table (mergegate.persistence.checkbuilds.CheckBuilds):
a CI's builds and the local checks' retried runs alike.
"""

from __future__ import annotations

from typing import Any

import click

from mergegate.persistence.checkbuilds import CheckBuilds, FlakyCheck
from mergegate.statemachine._validation import short_sha

from .app import cli, session_of
from .output import emit

__all__ = ["flaky", "flaky_json", "flaky_text"]


def flaky_json(items: list[FlakyCheck]) -> list[dict[str, Any]]:
    """Each flaky check of a candidate with every attempt, oldest first."""
    return [
        {
            "check": item.check,
            "merge_sha": item.merge_sha,
            "attempts": [
                {"attempt": r.attempt, "state": r.state, "exit_code": r.exit_code, "url": r.url}
                for r in item.attempts
            ],
        }
        for item in items
    ]


def flaky_text(items: list[FlakyCheck]) -> str:
    """One line per flaky check and one per attempt; empty when there is none."""
    lines = []
    for item in items:
        lines.append(f"flaky: {item.check} failed then passed on merge {short_sha(item.merge_sha)}")
        for r in item.attempts:
            code = "" if r.exit_code is None else f" (exit {r.exit_code})"
            where = f" {r.url}" if r.url else ""
            lines.append(f"  attempt {r.attempt}: {r.state}{code}{where}")
    return "".join(f"{line}\n" for line in lines)


def for_slug(store: Any, slug: str) -> list[FlakyCheck]:
    """The flaky checks recorded for ``slug``."""
    return CheckBuilds(store).flaky(slug)


@cli.command()
@click.pass_context
def flaky(ctx: click.Context) -> int:
    """Count the flaky checks: each check that failed and then passed on a retry, per check."""
    s = session_of(ctx)
    builds = CheckBuilds(s.store())
    counts = builds.flaky_counts()
    items = builds.flaky()
    result = {
        "counts": counts,
        "flaky": [{"slug": i.slug, **flaky_json([i])[0]} for i in items],
    }
    text = "".join(f"{name}: {n}\n" for name, n in counts.items()) or "no flaky checks\n"
    return emit(s.json, s.command, result, text)
