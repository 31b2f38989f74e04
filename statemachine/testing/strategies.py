"""Hypothesis strategies for mergegate's values, shipped for downstream suites.

Every strategy here builds only valid values unless its name says otherwise
(``hostile_*``), so a downstream test can draw from it without filtering.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs
from hypothesis import strategies as st

from .._validation import SLUG_MAX, SLUG_RE
from ..records import BlockedReport, CandidateKey, CheckResult, Evidence, Reason
from ..states import Event

__all__ = [
    "MARKER",
    "PLAN_PATHS",
    "BranchPlan",
    "ChainPlan",
    "CommitPlan",
    "FileEdit",
    "RepoPlan",
    "blocked_reports",
    "branches",
    "candidate_keys",
    "chain_plans",
    "check_results",
    "commit_plans",
    "event_sequences",
    "hostile_branches",
    "hostile_shas",
    "hostile_slugs",
    "relpaths",
    "repo_plans",
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


_HEX = "0123456789abcdef"


def shas(lengths: tuple[int, ...] = (40, 64)) -> st.SearchStrategy[str]:
    """Full object ids: lowercase hex of SHA-1 (40) or SHA-256 (64) length.

    These are the only shas the Engine accepts; an abbreviation is resolved
    to one of these before it reaches a record.
    """
    return st.sampled_from(lengths).flatmap(lambda n: st.text(_HEX, min_size=n, max_size=n))


def hostile_shas() -> st.SearchStrategy[str]:
    """Shas the Engine must refuse: abbreviations, wrong lengths, upper case, non-hex."""
    return st.one_of(
        st.text(_HEX, max_size=39),
        st.text(_HEX, min_size=41, max_size=63),
        st.text(_HEX, min_size=65, max_size=80),
        st.text(_HEX.upper(), min_size=40, max_size=40).filter(lambda s: s != s.lower()),
        st.text(min_size=40, max_size=40).filter(lambda s: not set(s) <= set(_HEX)),
        shas().map(lambda s: f"{s}\n"),
    )


@st.composite
def branches(draw: st.DrawFn) -> str:
    """Valid, option-safe git branch names, some with ``/`` components."""
    parts = draw(
        st.lists(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True), min_size=1, max_size=3)
    )
    return "/".join(parts)


def candidate_keys(
    slug: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[CandidateKey]:
    """Valid candidate identities; ``slug`` replaces the slug strategy (``st.just(...)`` too)."""
    # ``is None``, not ``or``: a strategy's truth value is a hypothesis warning.
    chosen = slugs() if slug is None else slug
    return st.builds(CandidateKey, slug=chosen, branch=branches(), sha=shas())


def texts(max_size: int = 200) -> st.SearchStrategy[str]:
    """Any valid UTF-8 text, newlines and control characters included."""
    return st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size)


@st.composite
def relpaths(draw: st.DrawFn) -> str:
    """Relative POSIX paths that stay inside their root."""
    parts = draw(
        st.lists(
            st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}", fullmatch=True),
            min_size=1,
            max_size=4,
        )
    )
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
        case Reason.CHECKS_TIMED_OUT:
            timed = draw(check_results(failed=True))
            evidence = Evidence(checks=(attrs.evolve(timed, exit_code=None, timed_out=True),))
        case Reason.MAIN_MOVED:
            attempts: list[str] = draw(st.lists(shas(), min_size=1, max_size=3))
            evidence = Evidence(main_attempts=attempts)
        case Reason.PRECONDITION_FAILED | Reason.PUSH_REJECTED:
            evidence = Evidence(diagnostic=draw(texts(100).filter(str.strip)))
        case Reason.APPLY_INTERRUPTED:
            since = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
                seconds=draw(st.integers(0, 10**8))
            )
            evidence = Evidence(lease_owner=draw(_WORD), lease_since=since)
        case Reason.EXTERNAL:
            evidence = Evidence(files=tuple(draw(st.lists(relpaths(), max_size=3))))
        case Reason.CONFIG_CHANGED:
            evidence = Evidence(
                files=tuple(draw(st.lists(relpaths(), min_size=1, max_size=2))),
                diagnostic=draw(texts(100).filter(str.strip)),
            )
    return BlockedReport(reason, draw(shas()), evidence, detail=draw(st.none() | texts(200)))


def event_sequences(min_size: int = 1, max_size: int = 30) -> st.SearchStrategy[list[Event]]:
    """Arbitrary event sequences, legal and illegal alike, for driving an Engine."""
    return st.lists(st.sampled_from(Event), min_size=min_size, max_size=max_size)


def hostile_slugs() -> st.SearchStrategy[str]:
    """Strings that must never be accepted as slugs."""
    return st.sampled_from(
        [
            "../x",
            "-x",
            "a;rm -rf b",
            "--upload-pack=x",
            "A",
            "a--b",
            "a_b",
            "",
            " a",
            "a\nb",
            "a\n",
            "a/b",
            "x" * (SLUG_MAX + 1),
            "\u00e9t\u00e9",
            ".",
            "a-",
        ]
    ) | texts(20).filter(lambda s: not _is_slug(s))


def hostile_branches() -> st.SearchStrategy[str]:
    """Strings that must never be accepted as branch names."""
    return st.sampled_from(
        [
            "--upload-pack=x",
            "-x",
            "../x",
            "a..b",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "a.lock",
            ".a",
            "a/",
            "/a",
            "a//b",
            "@",
            "a@{1}",
            "a\nb",
            "a\x00b",
            "",
            "a.",
        ]
    )


def _is_slug(value: str) -> bool:
    return bool(SLUG_RE.fullmatch(value)) and len(value) <= SLUG_MAX


# -- repository plans: pure data a git-backed suite turns into a real repository --

#: The file whose presence makes the marker check of a plan fail.
MARKER = "FAIL"


@attrs.frozen
class FileEdit:
    """Write ``content`` to ``path``, or delete it when ``content`` is ``None``."""

    path: str
    content: str | None


@attrs.frozen
class CommitPlan:
    """One commit: its edits, applied on top of its parent's tree."""

    edits: tuple[FileEdit, ...]


@attrs.frozen
class BranchPlan:
    """A candidate branch: forks from main's commit number ``base``, adds ``commits``."""

    name: str
    slug: str
    base: int
    commits: tuple[CommitPlan, ...]

    @property
    def adds_marker(self) -> bool:
        """Whether the branch's last write to the marker file creates it."""
        last = [e for c in self.commits for e in c.edits if e.path == MARKER]
        return bool(last) and last[-1].content is not None


@attrs.frozen
class RepoPlan:
    """A repository to build: main's history (root first) and candidate branches."""

    main: tuple[CommitPlan, ...]
    branches: tuple[BranchPlan, ...]


# Few paths and few contents, so that branches often touch the same file: with
# the same content the merge is clean, with different content it conflicts.
PLAN_PATHS = ("a.txt", "b.txt", "c.txt", "d/e.txt")


def commit_plans(
    paths: tuple[str, ...] = PLAN_PATHS, marker_weight: int = 1
) -> st.SearchStrategy[CommitPlan]:
    """Commits of one to three edits over ``paths`` (and sometimes the marker file)."""
    pool = paths + (MARKER,) * marker_weight
    edit = st.builds(
        FileEdit,
        path=st.sampled_from(pool),
        content=st.sampled_from(["one\n", "two\n", "three\n"]) | st.none(),
    )
    return st.builds(
        CommitPlan,
        st.lists(edit, min_size=1, max_size=3, unique_by=lambda e: e.path).map(tuple),
    )


@st.composite
def repo_plans(
    draw: st.DrawFn,
    max_main: int = 3,
    max_branches: int = 4,
    paths: tuple[str, ...] = PLAN_PATHS,
) -> RepoPlan:
    """Repository plans: main's history and branches ``cand-<n>`` with slugs alike.

    The root commit writes every path, so main never starts empty; the marker
    file appears only on branches, never on main.
    """
    root = CommitPlan(tuple(FileEdit(p, "base\n") for p in paths))
    rest = draw(st.lists(commit_plans(paths, marker_weight=0), max_size=max_main - 1))
    main = (root, *rest)
    count = draw(st.integers(1, max_branches))
    branches = tuple(
        BranchPlan(
            name=f"cand-{i}",
            slug=f"cand-{i}",
            base=draw(st.integers(0, len(main) - 1)),
            commits=tuple(draw(st.lists(commit_plans(paths), min_size=1, max_size=2))),
        )
        for i in range(count)
    )
    return RepoPlan(main, branches)


@attrs.frozen
class ChainPlan:
    """A queue to integrate with a speculative chain, and what happens around it.

    ``repo`` holds the queue (its branches, submitted in order; a branch that
    writes the marker file fails its check), ``concurrency`` the chain's
    length, ``outside_writer`` whether another writer moves ``main`` while the
    first check runs, and ``outside_after`` when (in seconds from the start)
    yet another writer moves it, at a moment no one chose, if it does.
    """

    repo: RepoPlan
    concurrency: int
    outside_writer: bool
    outside_after: float | None = None


@st.composite
def chain_plans(draw: st.DrawFn, max_branches: int = 6, max_concurrency: int = 4) -> ChainPlan:
    """Chain plans: random queues and verdicts, concurrency 1 to ``max_concurrency``."""
    return ChainPlan(
        draw(repo_plans(max_branches=max_branches)),
        draw(st.integers(1, max_concurrency)),
        draw(st.booleans()),
        draw(st.none() | st.floats(0.0, 1.0)),
    )
