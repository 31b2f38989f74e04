"""The resolved rule as a policy: mark_done per rule, the occurrence a done answers, the
removal rules, and an embedder's callable. Real files in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from mergegate.followups import (
    CallableResolver,
    FolderRemovedResolver,
    FollowUps,
    NotMarkable,
    ResolvedRule,
    RoadmapGoneResolver,
    StateFileResolver,
    mark_done,
    roadmap_slugs,
)
from mergegate.statemachine import BlockedRecord, BlockedReport, FollowUpState

MakeRecord = Callable[..., BlockedRecord]


@pytest.fixture
def made(todos: Path, make_record: MakeRecord, checks_report: BlockedReport) -> BlockedRecord:
    """A materialized follow-up (folder and roadmap entry), as a block leaves it."""
    record = make_record()
    FollowUps(todos).materialize(record, checks_report)
    return record


def _done(rule: ResolvedRule, todos: Path, record: BlockedRecord) -> str:
    return mark_done(rule, record, todos_root=todos, roadmap=todos / "roadmap.yaml")


def test_state_done_marks_the_latest_occurrence(todos: Path, made: BlockedRecord) -> None:
    """done writes status done for occurrence N, keeping the comments; it answers N only."""
    resolver = StateFileResolver(todos)
    assert resolver.unresolved_reason(made) is not None
    _done(ResolvedRule.STATE_DONE, todos, made)
    text = (todos / made.follow_up_slug / "state.yaml").read_text()
    assert "status: done\nresolved_occurrence: 1\n" in text
    assert text.startswith("# The follow-up's state.")
    assert resolver.unresolved_reason(made) is None
    second = attrs.evolve(made, occurrences=2)
    why = resolver.unresolved_reason(second)
    assert why is not None
    assert "answers occurrence 1" in why
    _done(ResolvedRule.STATE_DONE, todos, second)
    assert resolver.unresolved_reason(second) is None
    assert (todos / made.follow_up_slug / "state.yaml").read_text().count("status:") == 1


def test_hand_edited_done_answers_the_first_occurrence_only(
    todos: Path, made: BlockedRecord
) -> None:
    """A status: done without resolved_occurrence counts for occurrence 1, not for 2."""
    path = todos / made.follow_up_slug / "state.yaml"
    path.write_text(path.read_text().replace("status: open", "status: done"))
    assert StateFileResolver(todos).unresolved_reason(made) is None
    assert StateFileResolver(todos).unresolved_reason(attrs.evolve(made, occurrences=2))


def test_folder_removed_rule(todos: Path, made: BlockedRecord) -> None:
    """done removes the folder; the rule is resolved once it is gone."""
    resolver = FolderRemovedResolver(todos)
    assert resolver.unresolved_reason(made) is not None
    _done(ResolvedRule.FOLDER_REMOVED, todos, made)
    assert not (todos / made.follow_up_slug).exists()
    assert resolver.unresolved_reason(made) is None
    assert "already removed" in _done(ResolvedRule.FOLDER_REMOVED, todos, made)


def test_roadmap_gone_rule(todos: Path, made: BlockedRecord) -> None:
    """done removes the roadmap entry and keeps the others; resolved once it is gone."""
    roadmap = todos / "roadmap.yaml"
    roadmap.write_text("# mine\n" + roadmap.read_text() + "- slug: keep-me\n")
    resolver = RoadmapGoneResolver(roadmap)
    assert resolver.unresolved_reason(made) is not None
    _done(ResolvedRule.ROADMAP_GONE, todos, made)
    assert roadmap_slugs(roadmap) == ["keep-me"]
    assert roadmap.read_text().startswith("# mine\n")
    assert resolver.unresolved_reason(made) is None


def test_done_refuses_a_follow_up_mergegate_did_not_create(
    todos: Path, made: BlockedRecord
) -> None:
    """A failed follow-up cannot be marked done, whatever the rule; nothing is written."""
    failed = attrs.evolve(made, follow_up_state=FollowUpState.FAILED, follow_up_error="held")
    before = (todos / made.follow_up_slug / "state.yaml").read_bytes()
    for rule in ResolvedRule:
        with pytest.raises(NotMarkable, match="never created by mergegate"):
            _done(rule, todos, failed)
    assert (todos / made.follow_up_slug / "state.yaml").read_bytes() == before


def test_done_refuses_a_state_file_of_another_candidate(todos: Path, made: BlockedRecord) -> None:
    """A state.yaml naming another sha is not marked and not removed."""
    path = todos / made.follow_up_slug / "state.yaml"
    path.write_text(path.read_text().replace(made.key.sha, "f" * 40))
    for rule in (ResolvedRule.STATE_DONE, ResolvedRule.FOLDER_REMOVED):
        with pytest.raises(NotMarkable, match="not this candidate's follow-up"):
            _done(rule, todos, made)
    assert path.is_file()


def test_callable_resolver(made: BlockedRecord) -> None:
    """An embedder's function decides; its answer is escaped to one line."""
    assert CallableResolver(lambda _r: None).unresolved_reason(made) is None
    assert CallableResolver(lambda _r: "not\nyet").unresolved_reason(made) == "not\\nyet"
