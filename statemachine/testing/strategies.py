"""Hypothesis strategies for mergegate's values, shipped for downstream suites.

Every strategy here builds only valid values unless its name says otherwise
(``hostile_*``), so a downstream test can draw from it without filtering.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from ..records import BlockedReport, CandidateKey, CheckResult, Evidence, Reason
from ..states import Event
from ..validation import SLUG_MAX

__all__ = [
    "blocked_reports",
    "branches",
    "candidate_keys",
    "check_results",
    "event_sequences",
    "hostile_branches",
    "hostile_slugs",
    "relpaths",
    "shas",
    "slugs",
    "texts",
]

_WORD = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)


@st.composite
def slugs(draw: st.DrawFn, max_size: int = SLUG_MAX) -> str:
    """Valid slugs: hyphen-joined lowercase words, at most ``max_size`` characters."""
    words = draw(st.lists(_WORD, min_size=1, max_size=6))
    return "-".join(words)[:max_size].strip("-") or "x"


def shas(min_size: int = 40, max_size: int = 40) -> st.SearchStrategy[str]:
    """Lowercase hex shas (full 40-character ones by default)."""
    return st.text("0123456789abcdef", min_size=min_size, max_size=max_size)


@st.composite
def branches(draw: st.DrawFn) -> str:
    """Valid, option-safe git branch names, some with ``/`` components."""
    parts = draw(st.lists(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True),
                          min_size=1, max_size=3))
    return "/".join(parts)


def candidate_keys(
    slug: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[CandidateKey]:
    """Valid candidate identities."""
    return st.builds(CandidateKey, slug=slug or slugs(), branch=branches(), sha=shas())


def texts(max_size: int = 200) -> st.SearchStrategy[str]:
    """Any valid UTF-8 text, newlines and control characters included."""
    return st.text(st.characters(exclude_categories=("Cs",)), max_size=max_size)


@st.composite
def relpaths(draw: st.DrawFn) -> str:
    """Relative POSIX paths that stay inside their root."""
    parts = draw(st.lists(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}", fullmatch=True),
                          min_size=1, max_size=4))
    return "/".join(parts)


def check_results(failed: bool | None = None) -> st.SearchStrategy[CheckResult]:
    """Check runs; ``failed`` forces their outcome."""
    code = st.integers(0, 255)
    if failed is True:
        code = st.integers(1, 255)
    elif failed is False:
        code = st.just(0)
    return st.builds(
        CheckResult,
        name=st.from_regex(r"[a-z][a-z0-9 _-]{0,20}", fullmatch=True),
        exit_code=code,
        output_tail=texts(300),
    )


@st.composite
def blocked_reports(draw: st.DrawFn, reason: Reason | None = None) -> BlockedReport:
    """Valid blocked reports, with the evidence each reason requires."""
    reason = reason or draw(st.sampled_from(Reason))
    evidence = Evidence()
    match reason:
        case Reason.MERGE_CONFLICT:
            evidence = Evidence(conflicted_paths=draw(st.lists(relpaths(), min_size=1, max_size=5)))
        case Reason.CHECKS_FAILED:
            checks = draw(st.lists(check_results(), max_size=3))
            checks.append(draw(check_results(failed=True)))
            evidence = Evidence(checks=tuple(checks))
        case Reason.MAIN_MOVED:
            evidence = Evidence(main_attempts=tuple(draw(st.lists(shas(), min_size=1, max_size=3))))
        case Reason.PRECONDITION_FAILED | Reason.PUSH_REJECTED:
            evidence = Evidence(diagnostic=draw(texts(100).filter(str.strip)))
        case Reason.APPLY_INTERRUPTED:
            since = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(st.integers(0, 10**8)))
            evidence = Evidence(lease_owner=draw(_WORD), lease_since=since)
        case Reason.EXTERNAL:
            evidence = Evidence(files=tuple(draw(st.lists(relpaths(), max_size=3))))
    return BlockedReport(reason, draw(shas()), evidence, detail=draw(st.none() | texts(200)))


def event_sequences(min_size: int = 1, max_size: int = 30) -> st.SearchStrategy[list[Event]]:
    """Arbitrary event sequences, legal and illegal alike, for driving an Engine."""
    return st.lists(st.sampled_from(Event), min_size=min_size, max_size=max_size)


def hostile_slugs() -> st.SearchStrategy[str]:
    """Strings that must never be accepted as slugs."""
    return st.sampled_from(
        ["../x", "-x", "a;rm -rf b", "--upload-pack=x", "A", "a--b", "a_b", "", " a", "a\nb",
         "a/b", "x" * (SLUG_MAX + 1), "\u00e9t\u00e9", ".", "a-"]
    ) | texts(20).filter(lambda s: not _is_slug(s))


def hostile_branches() -> st.SearchStrategy[str]:
    """Strings that must never be accepted as branch names."""
    return st.sampled_from(
        ["--upload-pack=x", "-x", "../x", "a..b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[",
         "a\\b", "a.lock", ".a", "a/", "/a", "a//b", "@", "a@{1}", "a\nb", "a\x00b", "", "a."]
    )


def _is_slug(value: str) -> bool:
    from ..validation import SLUG_RE

    return bool(SLUG_RE.match(value)) and len(value) <= SLUG_MAX
