"""Validation of identities, reports and text: bad input never becomes a record."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    CheckResult,
    Evidence,
    IllegalTransition,
    InvalidInput,
    MergegateError,
    Reason,
    State,
)
from mergegate.statemachine._validation import SLUG_MAX, cap_text
from mergegate.statemachine.testing import strategies as mst

SHA = "a" * 40


@given(mst.hostile_slugs())
def test_hostile_slugs_are_rejected(slug: str) -> None:
    """No hostile slug can become part of an identity."""
    with pytest.raises(InvalidInput) as info:
        CandidateKey(slug, "main-work", SHA)
    assert info.value.field == "slug"
    assert "\n" not in str(info.value)


@given(mst.hostile_branches())
def test_hostile_branches_are_rejected(branch: str) -> None:
    """Branch names git would reject, or read as options, are refused."""
    with pytest.raises(InvalidInput) as info:
        CandidateKey("work", branch, SHA)
    assert info.value.field == "branch"


@given(mst.candidate_keys())
def test_generated_keys_are_valid(key: CandidateKey) -> None:
    """The shipped strategy only builds identities that validate."""
    assert CandidateKey(key.slug, key.branch, key.sha) == key


@pytest.mark.parametrize("sha", ["abcdef1\n", "abc", "g" * 40, "A" * 40, "a" * 65, "", " abcdefg"])
def test_bad_shas_are_rejected(sha: str) -> None:
    """A sha must be a full object id: 40 or 64 lowercase hex characters."""
    with pytest.raises(InvalidInput, match="40 or 64 lowercase hex"):
        CandidateKey("work", "work", sha)


@given(mst.hostile_shas())
def test_abbreviated_and_malformed_shas_are_refused(sha: str) -> None:
    """An abbreviation (or any non-full id) never becomes part of an identity."""
    with pytest.raises(InvalidInput) as info:
        CandidateKey("work", "work", sha)
    assert info.value.field == "sha"
    assert "resolve an abbreviation" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "sha", ["3f1c2ab", "3f1c2ab9e0d4", "3f1c2ab9e0d41234567890abcdef1234567890a"]
)
def test_short_sha_is_refused_by_candidate_key(sha: str) -> None:
    """A 7-, 12- or 39-hex abbreviation is refused with a hint to resolve it first."""
    with pytest.raises(InvalidInput, match="resolve an abbreviation to one first"):
        CandidateKey("work", "work", sha)


@given(mst.shas())
def test_full_sha1_and_sha256_ids_are_accepted(sha: str) -> None:
    """Full SHA-1 (40) and SHA-256 (64) ids are the shas an identity holds."""
    assert CandidateKey("work", "work", sha).sha == sha
    assert len(sha) in (40, 64)


def test_slug_at_the_length_limit() -> None:
    """A slug of exactly SLUG_MAX characters is accepted; one more is not."""
    assert CandidateKey("a" * SLUG_MAX, "b", SHA).slug == "a" * SLUG_MAX
    with pytest.raises(InvalidInput, match=f"at most {SLUG_MAX}"):
        CandidateKey("a" * (SLUG_MAX + 1), "b", SHA)


@pytest.mark.parametrize(
    ("reason", "evidence", "needs"),
    [
        (Reason.MERGE_CONFLICT, Evidence(), "conflicted path"),
        (Reason.CHECKS_FAILED, Evidence(checks=(CheckResult("ok", 0),)), "failed check"),
        (Reason.MAIN_MOVED, Evidence(), "main_attempts"),
        (Reason.PRECONDITION_FAILED, Evidence(), "diagnostic"),
        (Reason.APPLY_INTERRUPTED, Evidence(lease_owner="w"), "lease_since"),
    ],
)
def test_report_needs_its_reasons_evidence(reason: Reason, evidence: Evidence, needs: str) -> None:
    """Each reason code requires its own evidence."""
    with pytest.raises(InvalidInput, match=needs):
        BlockedReport(reason, SHA, evidence)


def test_unknown_reason_is_rejected() -> None:
    """A reason outside the closed taxonomy is refused."""
    with pytest.raises(ValueError, match="not a valid Reason"):
        BlockedReport("flaky", SHA, Evidence())  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["../etc/passwd", "/abs", "a/../../b", "a//b", "a\x00b", "a\\b"])
def test_evidence_paths_stay_inside(path: str) -> None:
    """Conflicted paths and evidence files may not escape their root."""
    with pytest.raises(InvalidInput):
        Evidence(conflicted_paths=(path,))
    with pytest.raises(InvalidInput):
        Evidence(files=(path,))


def test_conflicted_paths_are_sorted_and_unique() -> None:
    """Conflict evidence lists its paths sorted, once each."""
    assert Evidence(conflicted_paths=("b", "a", "b")).conflicted_paths == ("a", "b")


def test_overlong_text_is_capped_visibly() -> None:
    """Long detail keeps its head with a marker; a long output tail keeps its end."""
    report = BlockedReport(
        Reason.CHECKS_FAILED,
        SHA,
        Evidence(checks=(CheckResult("t", 1, "x" * 10_000 + "END"),)),
        detail="y" * 1_000_000,
    )
    assert report.detail is not None
    assert "more characters cut" in report.detail
    assert len(report.detail) < 5_000
    tail = report.evidence.checks[0].output_tail
    assert tail.endswith("END")
    assert "earlier characters cut" in tail
    assert cap_text("short") == "short"


def test_lone_surrogates_are_rejected() -> None:
    """Text that cannot be stored as UTF-8 is refused with a clear error."""
    with pytest.raises(InvalidInput, match="UTF-8"):
        BlockedReport(Reason.EXTERNAL, SHA, detail="bad \udcff byte")


@given(st.text(max_size=50))
def test_error_messages_are_one_line(text: str) -> None:
    """An error naming user text stays on one line."""
    err = IllegalTransition(text, State.PENDING, text, ())
    assert "\n" not in str(err)
    assert isinstance(err, MergegateError)
    assert isinstance(err, ValueError)
