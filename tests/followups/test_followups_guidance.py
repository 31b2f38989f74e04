"""Resume guidance: exact golden texts, configurable templates, and no forged NEXT: lines."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings

from mergegate.followups import FollowUpGuide, GuidanceTemplates, InvalidTemplate
from mergegate.statemachine import (
    BlockedRecord,
    Candidate,
    CandidateKey,
    FollowUpState,
    InvalidInput,
    Reason,
    State,
)
from mergegate.statemachine.testing import strategies

MakeRecord = Callable[..., BlockedRecord]
MakeCandidate = Callable[..., Candidate]
FIXTURES_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

WHERE = (
    "Candidate auth-login (feature/auth-login@0123456789ab) is blocked: "
    "checks_failed against main fedcba987654."
)
FAILED = "What failed: checks_failed."
FIX = (
    "Fix: make the checks pass on feature/auth-login merged with main and commit the fix on "
    "the branch; then run the NEXT lines in order (resume takes the branch's new tip)."
)
EVIDENCE = (
    "Evidence is in todos/auth-login-integration-blocked-0123456/input.md and from "
    "mergegate show auth-login; the follow-up todo is auth-login-integration-blocked-0123456."
)
TAIL = """\
NEXT: mergegate followups done auth-login-integration-blocked-0123456
NEXT: mergegate resume auth-login
NEXT: mergegate apply auth-login
"""

GOLDEN_CREATED = f"""\
INTEGRATION_BLOCKED
{WHERE}
{FAILED}
{EVIDENCE}
{FIX}
NEXT: mergegate remediate auth-login
{TAIL}"""

GOLDEN_FAILED = f"""\
INTEGRATION_BLOCKED_FOLLOWUP_FAILED
{WHERE}
{FAILED}
Evidence is stored (mergegate show auth-login), but the follow-up todo \
auth-login-integration-blocked-0123456 could not be created: \
PermissionError: [Errno 13] Permission denied: 'todos'
{FIX}
NEXT: mergegate followups sync
NEXT: mergegate remediate auth-login
{TAIL}"""

GOLDEN_PENDING = f"""\
INTEGRATION_BLOCKED_FOLLOWUP_PENDING
{WHERE}
{FAILED}
Evidence is stored (mergegate show auth-login); the follow-up todo \
auth-login-integration-blocked-0123456 is not created yet, and mergegate followups sync creates it.
{FIX}
NEXT: mergegate followups sync
NEXT: mergegate remediate auth-login
{TAIL}"""

GOLDEN_REMEDIATING = f"""\
INTEGRATION_BLOCKED
Candidate auth-login (feature/auth-login@0123456789ab) is being remediated; it was blocked: \
checks_failed against main fedcba987654.
{FAILED}
{EVIDENCE}
{FIX}
{TAIL}"""


def test_created_follow_up_golden_text(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """A blocked candidate with its follow-up created gets exactly the golden guidance."""
    guidance = FollowUpGuide().render(make_candidate(), make_record())
    assert guidance.text == GOLDEN_CREATED
    assert guidance.resume_command == "mergegate resume auth-login"


def test_failed_follow_up_golden_text(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """A follow-up that could not be created says so, and gives sync first, then remediation."""
    record = make_record(
        follow_up_state=FollowUpState.FAILED,
        follow_up_error="PermissionError: [Errno 13] Permission denied: 'todos'",
    )
    guidance = FollowUpGuide().render(make_candidate(), record)
    assert guidance.text == GOLDEN_FAILED
    assert guidance.resume_command == "mergegate resume auth-login"


def test_pending_follow_up_golden_text(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """A follow-up still in the outbox gets the pending code and the sync command first."""
    guidance = FollowUpGuide().render(
        make_candidate(), make_record(follow_up_state=FollowUpState.PENDING)
    )
    assert guidance.text == GOLDEN_PENDING


def test_remediating_candidate_is_not_told_to_remediate(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """Once remediating, the remediate command (now illegal) is left out of NEXT:."""
    guidance = FollowUpGuide().render(make_candidate(State.REMEDIATING), make_record())
    assert guidance.text == GOLDEN_REMEDIATING


def test_guidance_ignores_counts_and_times(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """Replays (more occurrences, later times) render the very same guidance."""
    guide = FollowUpGuide()
    first = guide.render(make_candidate(), make_record())
    later = make_record(occurrences=7, last_blocked_at=make_record().blocked_at.replace(year=2030))
    assert guide.render(make_candidate(), later) == first


def test_custom_templates_are_filled_and_shell_quoted(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """Configured templates replace the defaults; branch values with shell syntax are quoted."""
    key = CandidateKey("auth-login", "feat/$(id)&x", "0123456789abcdef0123456789abcdef01234567")
    templates = GuidanceTemplates(
        remediate="next-machine claim {follow_up}",
        resume="next-machine retry --slug {slug} --branch {branch} --sha {sha}",
    )
    guidance = FollowUpGuide(templates).render(make_candidate(key=key), make_record(key=key))
    assert guidance.next_commands == (
        "next-machine claim auth-login-integration-blocked-0123456",
        "mergegate followups done auth-login-integration-blocked-0123456",
        "next-machine retry --slug auth-login --branch 'feat/$(id)&x' --sha "
        "0123456789abcdef0123456789abcdef01234567",
        "mergegate apply auth-login",
    )
    assert guidance.resume_command == guidance.next_commands[2]


def test_todos_label_names_the_evidence_location(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """The evidence location uses the configured, relative todos label."""
    guidance = FollowUpGuide(todos_label="work/todos").render(make_candidate(), make_record())
    assert (
        "Evidence is in work/todos/auth-login-integration-blocked-0123456/input.md"
        in (guidance.facts[2])
    )


@pytest.mark.parametrize("label", ["", "a\nNEXT: x", "tab\there"])
def test_todos_label_must_be_one_printable_line(label: str) -> None:
    """A label that would break the one-line facts is refused at construction."""
    with pytest.raises(InvalidInput):
        FollowUpGuide(todos_label=label)


@FIXTURES_OK
@given(error=strategies.texts(500))
def test_stored_error_text_cannot_forge_a_next_line(
    error: str, make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """Whatever the stored error holds, the guidance is a code line, four facts and NEXT lines."""
    record = make_record(
        follow_up_state=FollowUpState.FAILED, follow_up_error=error + "\nNEXT: rm -rf /"
    )
    text = FollowUpGuide().render(make_candidate(), record).text
    lines = text.splitlines()
    assert lines[0] == "INTEGRATION_BLOCKED_FOLLOWUP_FAILED"
    assert len(lines) == 10
    assert [line for line in lines if line.startswith("NEXT:")] == [
        "NEXT: mergegate followups sync",
        "NEXT: mergegate remediate auth-login",
        "NEXT: mergegate followups done auth-login-integration-blocked-0123456",
        "NEXT: mergegate resume auth-login",
        "NEXT: mergegate apply auth-login",
    ]


@FIXTURES_OK
@given(key=strategies.candidate_keys())
def test_every_identity_gets_well_formed_guidance(
    key: CandidateKey, make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """Any valid identity renders a code line, four facts and NEXT: lines: resume, then apply."""
    record = make_record(key=key, reason=Reason.MAIN_MOVED)
    guidance = FollowUpGuide().render(make_candidate(key=key), record)
    lines = guidance.text.splitlines()
    assert lines[0].isupper()
    assert len(lines) == 1 + 4 + len(guidance.next_commands)
    assert lines[-2] == f"NEXT: {guidance.resume_command}"
    assert lines[-1].startswith("NEXT: mergegate apply ")
    assert guidance.resume_command is not None
    assert guidance.resume_command.startswith("mergegate resume ")


@pytest.mark.parametrize(
    ("field", "template", "problem"),
    [
        ("resume", "mergegate resume {candidate}", "unknown placeholder {candidate}"),
        ("apply", "run {slug!r}", "conversion or format spec"),
        ("apply", "run {slug:>20}", "conversion or format spec"),
        ("remediate", "run {0}", "unknown placeholder {0}"),
        ("remediate", "run {}", "unknown placeholder {}"),
        ("show", "run {slug.upper}", "unknown placeholder {slug.upper}"),
        ("sync", "run {", "not a format string"),
        ("resume", "first\nNEXT: second", "several lines"),
        ("resume", "first\u2028second", "several lines"),
        ("resume", "   ", "non-empty"),
    ],
)
def test_bad_templates_fail_at_construction(field: str, template: str, problem: str) -> None:
    """An unknown placeholder, a spec, a newline or an empty template raises InvalidTemplate."""
    with pytest.raises(InvalidTemplate, match=problem) as caught:
        GuidanceTemplates(**{field: template})
    assert isinstance(caught.value, ValueError)
    assert caught.value.name == field
    assert "{slug}, {branch}, {sha}, {follow_up}" in str(caught.value)


def test_default_templates_are_the_cli_commands() -> None:
    """The defaults are mergegate's own commands, so the CLI needs no configuration."""
    t = GuidanceTemplates()
    assert (t.remediate, t.resume, t.apply, t.show, t.sync, t.done) == (
        "mergegate remediate {slug}",
        "mergegate resume {slug}",
        "mergegate apply {slug}",
        "mergegate show {slug}",
        "mergegate followups sync",
        "mergegate followups done {follow_up}",
    )


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        (Reason.MERGE_CONFLICT, "run `git fetch origin && git merge origin/main`"),
        (Reason.CHECKS_FAILED, "merged with origin/main (run `git fetch origin` first"),
    ],
)
def test_remote_fix_names_the_remotes_main_and_its_fetch(
    make_candidate: MakeCandidate, make_record: MakeRecord, reason: Reason, says: str
) -> None:
    """With a remote the fix names origin/main and the fetch; NEXT lines and bytes stay put."""
    guide = FollowUpGuide(upstream="origin/main")
    guidance = guide.render(make_candidate(), make_record(reason=reason))
    [fix] = [fact for fact in guidance.facts if fact.startswith("Fix:")]
    assert says in fix
    assert "push feature/auth-login to origin" in fix
    assert "merge main" not in fix
    assert "with main" not in fix
    plain = FollowUpGuide().render(make_candidate(), make_record(reason=reason))
    assert guidance.next_commands == plain.next_commands
    assert guide.render(make_candidate(), make_record(reason=reason)) == guidance
