"""``--since DURATION|TIME``: a span back from now (``90m``, ``1h30m``, ``2d``) or a time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mergegate.statemachine import InvalidInput

__all__ = ["parse_since"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:(\d{1,9})([smhdw]))+$")
_PART = re.compile(r"(\d{1,9})([smhdw])")
_EXPECTED = (
    "give a duration such as 30m, 2h, 1h30m, 7d (units s m h d w), "
    "or an ISO 8601 time such as 2026-01-31 or 2026-01-31T12:00:00Z"
)


def parse_since(text: str, now: datetime) -> datetime:
    """The UTC time ``text`` means, relative to ``now`` for a duration.

    A time without an offset is read as UTC. Raises InvalidInput otherwise.
    """
    value = text.strip()
    if _DURATION.match(value):
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value))
        try:
            return now - timedelta(seconds=seconds)
        except OverflowError:
            raise InvalidInput("--since", text, "the duration is too long") from None
    try:
        parsed = datetime.fromisoformat(
            value.replace("Z", "+00:00") if value.endswith("Z") else value
        )
    except ValueError:
        raise InvalidInput("--since", text, _EXPECTED) from None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput("--since", text, "the time is out of range") from None
