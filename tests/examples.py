"""Example counts as fractions of the loaded Hypothesis profile, never hard-coded.

``tests/conftest.py`` registers the profiles (``default``, ``ci``, ``thorough``)
and loads the one ``HYPOTHESIS_PROFILE`` names before any test module is
imported. A test whose every example costs much more than usual (real git
repositories, subprocesses, a PostgreSQL round trip per step) asks for a
fraction of that profile's count here, so ``HYPOTHESIS_PROFILE=thorough``
still scales it; a long CI variant asks for a multiple (a divisor below 1).
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings

__all__ = ["fraction"]


def fraction(divisor: float, *, floor: int = 3, **changes: Any) -> settings:
    """The loaded profile with ``max_examples`` divided by ``divisor`` (at least ``floor``).

    ``changes`` are other settings, such as ``stateful_step_count``.
    """
    base = settings.default
    assert base is not None, "tests/conftest.py loads a profile before any test module"
    count = max(floor, round(base.max_examples / divisor))
    return settings(base, max_examples=count, **changes)
