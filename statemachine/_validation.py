"""Validators for the values that reach git, the filesystem and the logs.

These run as attrs validators, so an invalid identity or report cannot exist.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidInput

__all__ = [
    "SHA_SHOWN",
    "SLUG_MAX",
    "TEXT_CAP",
    "cap_text",
    "check_branch",
    "check_relpath",
    "check_sha",
    "check_slug",
    "check_text",
    "short_sha",
]

SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SLUG_MAX = 64
# A follow-up slug adds "-integration-blocked-" + 7 hex + an optional "-NNNN".
FOLLOW_UP_SLUG_MAX = SLUG_MAX + 21 + 7 + 5
# Only a full object id (SHA-1 or SHA-256) names one commit for good: an
# abbreviation can become ambiguous as objects arrive, and git resolves it
# through ref names first, so a tag named like it silently wins. Callers
# resolve abbreviations at the door (``mergegate.apply.resolve``).
SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
#: How many hex digits human output shows of a sha; ``--json`` shows all.
SHA_SHOWN = 12
BRANCH_MAX = 200
TEXT_CAP = 4000
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def check_slug(value: str, *, field: str = "slug", limit: int = SLUG_MAX) -> str:
    """Return ``value`` if it is a slug of at most ``limit`` characters; raise InvalidInput."""
    if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
        raise InvalidInput(field, value, "use lowercase letters, digits and single hyphens")
    if len(value) > limit:
        raise InvalidInput(field, value, f"use at most {limit} characters")
    return value


def check_sha(value: str, *, field: str = "sha") -> str:
    """Return ``value`` if it is a full lowercase commit id (40 or 64 hex); raise InvalidInput."""
    if not isinstance(value, str) or not SHA_RE.fullmatch(value):
        raise InvalidInput(
            field,
            value,
            "use a full object id, 40 or 64 lowercase hex characters; resolve an "
            "abbreviation to one first (mergegate.apply.resolve_sha), never through a ref name",
        )
    return value


def short_sha(sha: str) -> str:
    """The first ``SHA_SHOWN`` hex digits of ``sha``: the one width human output uses."""
    return sha[:SHA_SHOWN]


def check_branch(value: str, *, field: str = "branch") -> str:
    """Return ``value`` if ``refs/heads/<value>`` is a valid, option-safe git ref name.

    The rules are git's ``check-ref-format``, checked here without a subprocess,
    plus one of ours: no leading ``-``, so no branch can be read as an option.
    """
    if not isinstance(value, str) or not value:
        raise InvalidInput(field, value, "give a non-empty git branch name")
    # A lone surrogate (undecodable bytes) would fail later, in the store's or
    # git's encoder, as a bare UnicodeEncodeError instead of bad input.
    check_text(value, field=field)
    why = _ref_problem(value)
    if why is not None:
        raise InvalidInput(field, value, f"not a valid git branch name ({why})")
    return value


def _ref_problem(value: str) -> str | None:
    if len(value) > BRANCH_MAX:
        return f"longer than {BRANCH_MAX} characters"
    if value.startswith("-"):
        return "starts with '-'"
    if _REF_FORBIDDEN.search(value):
        return "has a space, control character or one of ~^:?*[\\"
    if ".." in value or "@{" in value or "//" in value:
        return "has '..', '@{' or '//'"
    if value == "@" or value.startswith("/") or value.endswith(("/", ".")):
        return "is '@' or starts with '/' or ends with '/' or '.'"
    for part in value.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            return "a component starts with '.' or ends with '.lock'"
    return None


def check_relpath(value: str, *, field: str = "path") -> str:
    """Return ``value`` if it is a relative path that stays inside its root."""
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise InvalidInput(field, value, "give a non-empty relative path")
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise InvalidInput(field, value, "remove control characters from the path")
    if value.startswith("/") or "\\" in value:
        raise InvalidInput(field, value, "use a relative POSIX path")
    if any(part in ("..", "") for part in value.split("/")):
        raise InvalidInput(field, value, "use a path without '..' or empty components")
    return value


def check_text(value: str, *, field: str) -> str:
    """Return ``value`` if it is text that encodes as UTF-8 (no lone surrogates)."""
    if type(value) is str and value.isascii():
        return value  # nearly every actor, note and owner: nothing to encode
    if not isinstance(value, str):
        raise InvalidInput(field, value, "give text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(field, value, "give valid UTF-8 text") from None
    return value


def cap_text(value: str, limit: int = TEXT_CAP) -> str:
    """Cap ``value`` at ``limit`` characters with a visible marker, never silently."""
    if len(value) <= limit:
        return value
    marker = f"\n[... mergegate: {len(value) - limit} more characters cut ...]"
    return value[:limit] + marker


def attrs_validator(check: Any, **kwargs: Any) -> Any:
    """Adapt a ``check_*`` function to an attrs validator."""

    # Every keyword reaches the check: a ``limit`` dropped here once made every
    # follow-up slug obey the 64-character slug limit instead of its own.
    if not kwargs:
        # The common case, and the cheapest call: every record built runs it.
        def validate_plain(_instance: object, attribute: Any, value: Any) -> None:
            check(value, field=attribute.name)

        return validate_plain
    options = {"field": None, **kwargs}

    def validate(_instance: object, attribute: Any, value: Any) -> None:
        check(value, **{**options, "field": options["field"] or attribute.name})

    return validate
