"""Guidance per reason code: golden texts that name what failed, and the same bytes for the
same stored facts. The goldens are the examples in docs/guidance.md."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mergegate.followups import FollowUpGuide
from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CheckResult,
    Evidence,
    Reason,
    State,
)

MakeRecord = Callable[..., BlockedRecord]
MakeCandidate = Callable[..., Candidate]
GOLDEN = Path(__file__).parent / "golden"
MAIN = "fedcba9876543210fedcba9876543210fedcba98"
OTHER = "00112233445566778899aabbccddeeff00112233"

REPORTS: dict[Reason, BlockedReport] = {
    Reason.MERGE_CONFLICT: BlockedReport(
        Reason.MERGE_CONFLICT,
        MAIN,
        Evidence(conflicted_paths=("a.txt", "b/c.py", "d.md", "e.toml", "f.rs")),
    ),
    Reason.CHECKS_FAILED: BlockedReport(
        Reason.CHECKS_FAILED,
        MAIN,
        Evidence(
            checks=(
                CheckResult("lint", 0, ""),
                CheckResult("pytest", 1, "1 failed"),
                CheckResult("e2e", None, "", timed_out=True),
            )
        ),
    ),
    Reason.CHECKS_TIMED_OUT: BlockedReport(
        Reason.CHECKS_TIMED_OUT,
        MAIN,
        Evidence(
            checks=(
                CheckResult(
                    "linux-tests",
                    None,
                    "[mergegate: no worker started the build within 120s; cancelled]",
                    timed_out=True,
                    url="http://ci.example:8010/#/buildrequests/17",
                ),
            )
        ),
        detail="builder 'linux-tests' did not start a build within 120s",
    ),
    Reason.MAIN_MOVED: BlockedReport(
        Reason.MAIN_MOVED, MAIN, Evidence(main_attempts=(OTHER, MAIN))
    ),
    Reason.PUSH_REJECTED: BlockedReport(
        Reason.PUSH_REJECTED,
        MAIN,
        Evidence(diagnostic="remote: main is protected; main (pre-receive hook declined)"),
    ),
    Reason.APPLY_INTERRUPTED: BlockedReport(
        Reason.APPLY_INTERRUPTED,
        MAIN,
        Evidence(lease_owner="ci@host-3:812", lease_since=datetime(2026, 1, 1, tzinfo=UTC)),
        detail="the apply lease held by ci@host-3:812 expired at 2026-01-01T00:10:00+00:00",
    ),
    Reason.CONFIG_CHANGED: BlockedReport(
        Reason.CONFIG_CHANGED,
        MAIN,
        Evidence(
            files=("mergegate.toml",),
            diagnostic="--- a/mergegate.toml\n+++ b/mergegate.toml\n-timeout = 60\n+timeout = 1\n",
        ),
    ),
    Reason.PRECONDITION_FAILED: BlockedReport(
        Reason.PRECONDITION_FAILED,
        MAIN,
        Evidence(diagnostic="branch refs/heads/feature/auth-login does not exist"),
    ),
}


def _render(make_candidate: MakeCandidate, make_record: MakeRecord, reason: Reason) -> str:
    report = REPORTS[reason]
    guide = FollowUpGuide(evidence=lambda _record: report)
    record = make_record(reason=reason)
    return guide.render(make_candidate(State.BLOCKED), record).text


@pytest.mark.parametrize("reason", sorted(REPORTS))
def test_guidance_golden_per_reason(
    make_candidate: MakeCandidate, make_record: MakeRecord, reason: Reason
) -> None:
    """Each reason's guidance matches its golden file (MERGEGATE_REGOLD=1 rewrites them)."""
    text = _render(make_candidate, make_record, reason)
    path = GOLDEN / f"guidance-{reason.value}.txt"
    if os.environ.get("MERGEGATE_REGOLD") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_what_failed_names_paths_then_counts_the_rest(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """A conflict names the first three paths and says how many more."""
    text = _render(make_candidate, make_record, Reason.MERGE_CONFLICT)
    assert "5 conflicted path(s): a.txt, b/c.py, d.md and 2 more." in text


def test_what_failed_names_failed_checks_only(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """Failed checks are named with their exit code or 'timed out'; a passing one is not."""
    text = _render(make_candidate, make_record, Reason.CHECKS_FAILED)
    assert "check(s) pytest (exit 1), e2e (timed out)." in text
    assert "lint" not in text


def test_what_failed_names_the_builder_step_and_build(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """A CI's check is named with its failed step and build URL, so the guidance leads there."""
    report = BlockedReport(
        Reason.CHECKS_FAILED,
        MAIN,
        Evidence(
            checks=(
                CheckResult(
                    "linux-tests",
                    2,
                    "E   AssertionError: totals differ (1 != 2)",
                    url="http://ci.example:8010/#/builders/3/builds/41",
                    step="pytest",
                ),
            )
        ),
    )
    guide = FollowUpGuide(evidence=lambda _record: report)
    text = guide.render(
        make_candidate(State.BLOCKED), make_record(reason=Reason.CHECKS_FAILED)
    ).text
    assert (
        "check(s) linux-tests (exit 2, step 'pytest', build "
        "http://ci.example:8010/#/builders/3/builds/41)." in text
    )


def test_interrupted_guidance_has_no_time(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """The interrupted apply's detail carries a time; the guidance does not print it."""
    text = _render(make_candidate, make_record, Reason.APPLY_INTERRUPTED)
    assert "2026" not in text
    assert "ci@host-3:812" in text


def test_remediating_guidance_says_so(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """Once remediating, the first fact says so and remediate is no longer a NEXT line."""
    report = REPORTS[Reason.MERGE_CONFLICT]
    guide = FollowUpGuide(evidence=lambda _record: report)
    text = guide.render(make_candidate(State.REMEDIATING), make_record()).text
    assert "is being remediated" in text
    assert "NEXT: mergegate remediate" not in text
    assert text.splitlines()[-3:] == [
        "NEXT: mergegate followups done auth-login-integration-blocked-0123456",
        "NEXT: mergegate resume auth-login",
        "NEXT: mergegate apply auth-login",
    ]
