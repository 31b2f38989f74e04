"""How a harness check fails: :class:`HarnessFailure`, raised by :func:`expect`.

The checks do not use ``assert``, so they hold under ``python -O`` and read the
same in any test runner; the failure names the check and carries its data.
"""

from __future__ import annotations

__all__ = ["HarnessFailure", "expect"]


class HarnessFailure(AssertionError):
    """A harness check failed: ``check`` names it, ``facts`` carry the data behind it."""

    def __init__(self, check: str, summary: str, **facts: object) -> None:
        self.check = check
        self.summary = summary
        self.facts = facts
        lines = [f"{check}: {summary}"]
        lines += [f"  {name}: {value!r}" for name, value in facts.items()]
        super().__init__("\n".join(lines))


def expect(condition: bool, check: str, summary: str, **facts: object) -> None:
    """Raise :class:`HarnessFailure` unless ``condition``: for your own rules and invariants."""
    if not condition:
        raise HarnessFailure(check, summary, **facts)
