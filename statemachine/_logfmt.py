"""One grep-friendly logfmt line per transition.

Values are quoted and escaped, so user text with newlines, quotes or ``key=``
pairs can never start a line or forge a field of its own.
"""

from __future__ import annotations

import logging
import re

from .records import Outcome

__all__ = ["format_logfmt", "log_outcome", "logger"]

logger = logging.getLogger("mergegate.transitions")
# fullmatch, not match with "$": "$" also matches before a final newline, so
# "0\n" went out bare and broke the line (found by Hypothesis).
_BARE = re.compile(r"[A-Za-z0-9_.:/@+-]+")


def _value(value: object) -> str:
    text = str(value)
    if _BARE.fullmatch(text):
        return text
    escaped = text.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'"{escaped}"'


def format_logfmt(pairs: dict[str, object]) -> str:
    """Render ``pairs`` as one logfmt line, skipping ``None`` values."""
    return " ".join(f"{k}={_value(v)}" for k, v in pairs.items() if v is not None)


def log_outcome(outcome: Outcome) -> None:
    """Log the outcome's transition; no-op outcomes are not logged."""
    entry = outcome.transition
    if entry is None or not logger.isEnabledFor(logging.INFO):
        return
    key = outcome.candidate.key
    blocked = outcome.blocked if entry.event.value in ("block", "interrupt") else None
    pairs: dict[str, object] = {
        "event": "integration_blocked" if blocked else entry.event.value,
        "transition": entry.event.value,
        "slug": key.slug,
        "branch": key.branch,
        "sha": entry.sha,
        "state": entry.dest.value,
        "from": entry.source.value if entry.source else "new",
        "seq": entry.seq,
        "actor": entry.actor,
    }
    if blocked is not None:
        pairs["reason"] = blocked.reason.value
        pairs["follow_up_slug"] = blocked.follow_up_slug
        pairs["follow_up_state"] = blocked.follow_up_state.value
        if outcome.guidance is not None:
            pairs["resume_cmd"] = outcome.guidance.resume_command
    elif entry.reason is not None:
        pairs["note"] = entry.reason
    if outcome.hook_errors:
        # The move stands; the count points a reader at the hooks logger's tracebacks.
        pairs["hook_errors"] = len(outcome.hook_errors)
    logger.info(format_logfmt(pairs))
