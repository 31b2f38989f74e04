"""The host's follow-up format: typed actions behind the NEXT lines, the scaffold's evidence
file in the guidance, no roadmap, extra state keys and sections, combined resolved rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergegate.followups import (
    AllResolved,
    AnyResolved,
    CallableResolver,
    FolderRemovedResolver,
    FollowUpGuide,
    FollowUps,
    GuidanceTemplates,
    TodoScaffold,
    Wiring,
    resolver_for,
)
from mergegate.statemachine import (
    Apply,
    BlockedRecord,
    BlockedReport,
    CandidateKey,
    FollowUpState,
    InvalidInput,
    MarkDone,
    Remediate,
    Resume,
    State,
    Sync,
)

from .conftest import MakeCandidate, MakeRecord


def test_actions_are_the_next_commands_as_data(
    make_candidate: MakeCandidate, make_record: MakeRecord, key: CandidateKey, follow_up: str
) -> None:
    """One action per NEXT line, in order; the resume action names the branch, not a sha."""
    guidance = FollowUpGuide().render(make_candidate(), make_record())
    assert guidance.actions == (
        Remediate(key.slug),
        MarkDone(key.slug, follow_up),
        Resume(key.slug, key.branch, key.sha),
        Apply(key.slug),
    )
    templates = GuidanceTemplates()
    assert guidance.next_commands == tuple(
        templates.render(a, key, follow_up) for a in guidance.actions
    )
    assert guidance.resume_action == Resume(key.slug, key.branch, key.sha)


def test_a_pending_follow_up_starts_with_sync_and_remediating_drops_remediate(
    make_candidate: MakeCandidate, make_record: MakeRecord
) -> None:
    """Sync comes first while the follow-up is pending; a remediating candidate skips Remediate."""
    record = make_record(follow_up_state=FollowUpState.PENDING)
    pending = FollowUpGuide().render(make_candidate(), record)
    assert [type(a) for a in pending.actions] == [Sync, Remediate, MarkDone, Resume, Apply]
    remediating = FollowUpGuide().render(make_candidate(State.REMEDIATING), make_record())
    assert [type(a) for a in remediating.actions] == [MarkDone, Resume, Apply]


def test_an_embedders_templates_render_the_same_actions(
    make_candidate: MakeCandidate, make_record: MakeRecord, key: CandidateKey
) -> None:
    """Own command templates give own command lines for the very same actions."""
    templates = GuidanceTemplates(
        resume="orch resume {slug} --branch {branch}", apply="orch integrate {slug}"
    )
    guidance = FollowUpGuide(templates).render(make_candidate(), make_record())
    assert guidance.actions == FollowUpGuide().render(make_candidate(), make_record()).actions
    assert guidance.next_commands[-2:] == (
        "orch resume auth-login --branch feature/auth-login",
        "orch integrate auth-login",
    )


def test_the_guidance_names_the_scaffolds_evidence_file_or_none(
    make_candidate: MakeCandidate, make_record: MakeRecord, follow_up: str
) -> None:
    """No input.md in the text when the scaffold writes none; its own file when it names one."""
    plain = FollowUpGuide(evidence_file=None).render(make_candidate(), make_record())
    assert "input.md" not in plain.text
    stored = f"Evidence is stored (mergegate show auth-login); the follow-up todo is {follow_up}."
    assert stored in plain.facts
    own = FollowUpGuide(evidence_file="EVIDENCE.md").render(make_candidate(), make_record())
    assert f"todos/{follow_up}/EVIDENCE.md" in own.text


class NoInputScaffold:
    """A host scaffold: one file, no input.md."""

    evidence_file = None

    def write(self, todos_root: Path, record: BlockedRecord, report: BlockedReport) -> object:
        """Write TODO.md only."""
        raise AssertionError("not called here")

    def deliver(self, todos_root: Path, record: BlockedRecord) -> None:
        """Keep it."""


def test_wiring_takes_the_evidence_file_from_the_scaffold(tmp_path: Path) -> None:
    """Wiring's guide follows its scaffold's evidence_file; no roadmap when roadmap=None."""
    wiring = Wiring(tmp_path / "todos", roadmap=None, scaffold=NoInputScaffold())  # type: ignore[arg-type]
    assert wiring.guide().evidence_file is None
    assert wiring.followups().roadmap is None
    assert Wiring(tmp_path / "todos").guide().evidence_file == "input.md"
    assert Wiring(tmp_path / "todos").followups().roadmap == tmp_path / "todos" / "roadmap.yaml"


class MisspeltScaffold:
    """A host scaffold whose evidence_file is misspelt (mypy refuses it; untyped code runs)."""

    evidence_fle = None

    def write(self, todos_root: Path, record: BlockedRecord, report: BlockedReport) -> object:
        """Never called."""
        raise AssertionError("not called here")

    def deliver(self, todos_root: Path, record: BlockedRecord) -> None:
        """Keep it."""


def test_a_scaffold_without_evidence_file_is_refused_when_wired(tmp_path: Path) -> None:
    """Wiring refuses a scaffold with no evidence_file, in one line, instead of naming input.md."""
    with pytest.raises(InvalidInput, match=r"MisspeltScaffold.*evidence_file") as caught:
        Wiring(tmp_path / "todos", scaffold=MisspeltScaffold())  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)


def test_no_roadmap_writes_no_roadmap_and_no_lock(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """FollowUps(roadmap=None) writes the folder and nothing beside it."""
    FollowUps(todos, roadmap=None).materialize(make_record(), checks_report)
    assert sorted(p.name for p in todos.iterdir()) == [make_record().follow_up_slug]


def test_extra_state_keys_and_sections(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """TodoScaffold adds a host's state.yaml keys and requirements sections, sorted."""
    scaffold = TodoScaffold(
        state_keys={"phase": "integration", "owner": "agent-7"},
        sections={"Acceptance": "- merged\n", "Context": "From TeleClaude."},
    )
    folder = scaffold.write(todos, make_record(), checks_report).path
    state = (folder / "state.yaml").read_text()
    assert state.endswith('owner: "agent-7"\nphase: "integration"\n')
    requirements = (folder / "requirements.md").read_text()
    assert requirements.index("## Acceptance\n\n- merged\n") < requirements.index(
        "## Context\n\nFrom TeleClaude.\n"
    )


@pytest.mark.parametrize(
    ("state_keys", "sections"),
    [
        ({"status": "x"}, {}),
        ({"Bad Key": "x"}, {}),
        ({"note": "two\nlines"}, {}),
        ({}, {"two\nlines": "x"}),
    ],
)
def test_bad_extras_are_refused_at_construction(
    state_keys: dict[str, str], sections: dict[str, str]
) -> None:
    """A key of mergegate's own, a bad key, a multi-line value or title: InvalidInput."""
    with pytest.raises(InvalidInput):
        TodoScaffold(state_keys=state_keys, sections=sections)


def test_combined_resolved_rules(make_record: MakeRecord) -> None:
    """AnyResolved passes on one rule, AllResolved needs every one; both say why not."""
    yes = CallableResolver(lambda _r: None)
    no = CallableResolver(lambda _r: "folder still there")
    also_no = CallableResolver(lambda _r: "state open")
    record = make_record()
    assert AnyResolved([no, yes]).unresolved_reason(record) is None
    both = AnyResolved([no, also_no]).unresolved_reason(record)
    assert both == "folder still there; or state open"
    assert AllResolved([yes, yes]).unresolved_reason(record) is None
    assert AllResolved([yes, also_no]).unresolved_reason(record) == "state open"
    with pytest.raises(InvalidInput):
        AnyResolved([])
    with pytest.raises(InvalidInput):
        AllResolved([42])  # type: ignore[list-item]


def test_resolver_for_builds_what_configuration_names(tmp_path: Path) -> None:
    """Rule names become one resolver, or several combined by any/all; bad names are refused."""
    todos = tmp_path / "todos"
    one = resolver_for(["folder-removed"], todos_root=todos)
    assert one == FolderRemovedResolver(todos)
    both = resolver_for(["folder-removed", "state-done"], todos_root=todos)
    assert isinstance(both, AnyResolved)
    assert len(both.rules) == 2
    roadmap = todos / "roadmap.yaml"
    every = resolver_for(
        ["state-done", "roadmap-gone"], todos_root=todos, roadmap=roadmap, combine="all"
    )
    assert isinstance(every, AllResolved)
    with pytest.raises(InvalidInput, match="cannot both hold"):
        resolver_for(["state-done", "folder-removed"], todos_root=todos, combine="all")
    with pytest.raises(InvalidInput, match="state-done, folder-removed or roadmap-gone"):
        resolver_for(["folder-gone"], todos_root=todos)
    with pytest.raises(InvalidInput, match="roadmap"):
        resolver_for(["roadmap-gone"], todos_root=todos)
    with pytest.raises(InvalidInput, match="any or all"):
        resolver_for(["state-done"], todos_root=todos, combine="either")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        resolver_for([], todos_root=todos)
