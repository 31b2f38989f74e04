"""Deterministic follow-up slugs.

The slug is chosen inside the blocking transaction, so the store can see every
slug already taken; that is why it lives here and not in ``followups``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ._validation import SLUG_MAX
from .records import CandidateKey

__all__ = ["SlugRule", "follow_up_slug"]


class SlugRule(Protocol):
    """Chooses the follow-up slug of a blocked identity, inside the blocking transaction.

    ``owner(slug)`` says which identity already holds ``slug`` (``None``: free).
    The rule must be a pure function of ``key`` and what ``owner`` says: the
    same identity must get the same slug on every replay, and a slug another
    identity holds must not be returned (the Engine refuses it). The default is
    :func:`follow_up_slug`; pass another as ``Engine(follow_up_slug=...)``.
    """

    def __call__(self, key: CandidateKey, owner: Callable[[str], CandidateKey | None]) -> str:
        """The follow-up slug of ``key``: a valid slug (``check_slug``)."""
        ...


_MARK = "integration-blocked"


def base_slug(key: CandidateKey) -> str:
    """``<slug>-integration-blocked-<sha7>``: readable, and fixed by the identity."""
    return f"{key.slug[:SLUG_MAX]}-{_MARK}-{key.sha[:7]}"


def follow_up_slug(key: CandidateKey, owner: Callable[[str], CandidateKey | None]) -> str:
    """The follow-up slug of ``key``, given ``owner``, which says who holds a slug.

    The same identity always gets the same slug. A different identity that
    would collide (same slug and sha7, another branch or a longer sha) takes
    the first free numeric suffix, starting at 2.
    """
    base = base_slug(key)
    candidate, n = base, 1
    while True:
        holder = owner(candidate)
        if holder is None or holder == key:
            return candidate
        n += 1
        candidate = f"{base}-{n}"
