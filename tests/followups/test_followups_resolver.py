"""The resolved rule: a follow-up is resolved iff its own state.yaml says status: done."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mergegate.followups import StateFileResolver
from mergegate.followups.scaffold import scaffold_todo
from mergegate.statemachine import BlockedRecord, BlockedReport

MakeRecord = Callable[..., BlockedRecord]


@pytest.fixture
def state_file(todos: Path, make_record: MakeRecord, checks_report: BlockedReport) -> Path:
    """The state.yaml of a freshly scaffolded follow-up."""
    return scaffold_todo(todos, make_record(), checks_report).path / "state.yaml"


def test_fresh_scaffold_is_unresolved(
    todos: Path, state_file: Path, make_record: MakeRecord
) -> None:
    """A follow-up as the scaffold wrote it (status: open) is not resolved, and says why."""
    why = StateFileResolver(todos).unresolved_reason(make_record())
    assert why is not None
    assert "status 'open', not 'done'" in why


def test_status_done_is_resolved(todos: Path, state_file: Path, make_record: MakeRecord) -> None:
    """Setting status: done in state.yaml, keeping the rest, resolves the follow-up."""
    state_file.write_text(state_file.read_text().replace("status: open", "status: done"))
    assert StateFileResolver(todos).unresolved_reason(make_record()) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("status: [\n", "not valid YAML"),
        ("- status: done\n", "not a mapping"),
        ("", "not a mapping"),
        ("status: done\n", "follow_up is None"),
    ],
)
def test_unparsable_or_unlinked_state_file_is_unresolved(
    todos: Path, state_file: Path, make_record: MakeRecord, text: str, why: str
) -> None:
    """A state.yaml that does not parse, is not a mapping or links nothing is unresolved."""
    state_file.write_text(text)
    reason = StateFileResolver(todos).unresolved_reason(make_record())
    assert reason is not None
    assert why in reason


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("state: done", "status None"),
        ("status: Done", "status 'Done'"),
        ("status: true", "status True"),
    ],
)
def test_anything_but_status_done_is_unresolved(
    todos: Path, state_file: Path, make_record: MakeRecord, line: str, why: str
) -> None:
    """A linked state.yaml whose status is missing or anything but done is unresolved."""
    state_file.write_text(state_file.read_text().replace("status: open", line))
    reason = StateFileResolver(todos).unresolved_reason(make_record())
    assert reason is not None
    assert why in reason


def test_missing_folder_is_unresolved(todos: Path, make_record: MakeRecord) -> None:
    """With no follow-up folder, the reason says the folder is missing."""
    why = StateFileResolver(todos).unresolved_reason(make_record())
    assert why is not None
    assert why.endswith("auth-login-integration-blocked-0123456 is missing")


def test_missing_state_file_is_unresolved(
    todos: Path, state_file: Path, make_record: MakeRecord
) -> None:
    """A follow-up folder without state.yaml is unresolved."""
    state_file.unlink()
    why = StateFileResolver(todos).unresolved_reason(make_record())
    assert why is not None
    assert "state.yaml is missing" in why


def test_folder_symlinked_out_of_todos_is_unresolved(
    tmp_path: Path, todos: Path, make_record: MakeRecord
) -> None:
    """A follow-up folder that points outside the todos folder never counts as resolved."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "state.yaml").write_text("status: done\n")
    todos.mkdir()
    os.symlink(outside, todos / make_record().follow_up_slug)
    why = StateFileResolver(todos).unresolved_reason(make_record())
    assert why is not None
    assert "outside the todos folder" in why
