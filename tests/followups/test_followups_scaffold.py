"""The todo scaffold: six atomic files, reused on replay, never handed to another candidate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from mergegate.followups import (
    TODO_FILES,
    FollowUpConflict,
    PathOutsideTodos,
    render_todo,
)
from mergegate.followups.paths import todo_path
from mergegate.followups.scaffold import read_source, scaffold_todo
from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    CandidateKey,
    CheckResult,
    Evidence,
    InvalidInput,
    Reason,
)
from mergegate.statemachine.testing import strategies

from ..procio import all_ready

GOLDEN = Path(__file__).parent / "golden"
MakeRecord = Callable[..., BlockedRecord]
FIXTURES_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, relative name to bytes."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def test_scaffold_creates_the_six_files(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport, follow_up: str
) -> None:
    """A first scaffold creates todos/<follow-up>/ holding exactly the six todo files."""
    result = scaffold_todo(todos, make_record(), checks_report)
    assert result.created
    assert result.path == (todos / follow_up).resolve()
    assert sorted(p.name for p in result.path.iterdir()) == sorted(TODO_FILES)
    assert sorted(p.name for p in todos.iterdir()) == [follow_up]


def test_input_md_matches_the_golden_file(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """input.md of a checks_failed block is the golden text (MERGEGATE_REGOLD=1 rewrites it)."""
    result = scaffold_todo(todos, make_record(), checks_report)
    path = GOLDEN / "input-checks_failed.md"
    if os.environ.get("MERGEGATE_REGOLD") == "1":
        path.write_text((result.path / "input.md").read_text(encoding="utf-8"), encoding="utf-8")
    golden = path.read_text(encoding="utf-8")
    assert (result.path / "input.md").read_text(encoding="utf-8") == golden


def test_input_md_lists_conflicted_paths_sorted(
    todos: Path, make_record: MakeRecord, conflict_report: BlockedReport
) -> None:
    """Conflict evidence appears in input.md with its paths in sorted order."""
    record = make_record(reason=Reason.MERGE_CONFLICT)
    text = (scaffold_todo(todos, record, conflict_report).path / "input.md").read_text()
    assert "### Conflicted paths\n\n- `src/a.py`\n- `src/b.py`\n" in text


def test_state_yaml_starts_open(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport, key: CandidateKey
) -> None:
    """The scaffold's state.yaml says status: open and links the source candidate."""
    result = scaffold_todo(todos, make_record(), checks_report)
    text = (result.path / "state.yaml").read_text()
    assert "\nstatus: open\n" in text
    assert f'  sha: "{key.sha}"\n' in text


def test_replay_reuses_the_folder_byte_for_byte(
    todos: Path,
    make_record: MakeRecord,
    checks_report: BlockedReport,
    conflict_report: BlockedReport,
) -> None:
    """A second scaffold with the same evidence writes nothing and reports reuse."""
    first = scaffold_todo(todos, make_record(), checks_report)
    before = snapshot(todos)
    mtimes = {p: p.stat().st_mtime_ns for p in first.path.iterdir()}
    second = scaffold_todo(todos, make_record(occurrences=2), checks_report)
    assert not second.created
    assert second.path == first.path
    assert snapshot(todos) == before
    assert {p: p.stat().st_mtime_ns for p in first.path.iterdir()} == mtimes
    third = scaffold_todo(todos, make_record(occurrences=3), conflict_report)
    assert not third.created


def test_a_repeated_block_refreshes_the_evidence_only(
    todos: Path,
    make_record: MakeRecord,
    checks_report: BlockedReport,
    conflict_report: BlockedReport,
) -> None:
    """A later occurrence with new evidence rewrites input.md; the remediator's files stay."""
    first = scaffold_todo(todos, make_record(), checks_report)
    state = first.path / "state.yaml"
    state.write_text(state.read_text() + "note: mine\n")
    before = snapshot(todos)
    scaffold_todo(todos, make_record(occurrences=2), conflict_report)
    after = snapshot(todos)
    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {f"{first.path.name}/input.md"}, changed
    assert b"### Conflicted paths" in after[f"{first.path.name}/input.md"]
    assert b"### Conflicted paths" not in before[f"{first.path.name}/input.md"]


def test_identical_records_render_identical_bytes(
    tmp_path: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """Two scaffolds of an identical record in two todos folders are byte-identical."""
    one = scaffold_todo(tmp_path / "one", make_record(), checks_report)
    two = scaffold_todo(tmp_path / "two", make_record(), checks_report)
    assert snapshot(one.path) == snapshot(two.path)


def test_folder_of_another_candidate_is_refused(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport, key: CandidateKey
) -> None:
    """A folder that links a different candidate raises FollowUpConflict and stays untouched."""
    scaffold_todo(todos, make_record(), checks_report)
    before = snapshot(todos)
    other = CandidateKey(key.slug, "feature/other", key.sha)
    with pytest.raises(FollowUpConflict, match="feature/other") as caught:
        scaffold_todo(todos, make_record(key=other), checks_report)
    assert isinstance(caught.value, FileExistsError)
    assert snapshot(todos) == before


def test_folder_without_linkage_is_refused(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport, follow_up: str
) -> None:
    """A human's folder with the follow-up's name but no input.md is not taken over."""
    (todos / follow_up).mkdir(parents=True)
    (todos / follow_up / "notes.md").write_text("mine\n")
    with pytest.raises(FollowUpConflict, match="no source linkage"):
        scaffold_todo(todos, make_record(), checks_report)
    assert sorted(p.name for p in (todos / follow_up).iterdir()) == ["notes.md"]


def test_source_linkage_round_trips_a_branch_with_backticks(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport, key: CandidateKey
) -> None:
    """read_source recovers an identity whose branch holds backticks, as written."""
    odd = CandidateKey(key.slug, "feat/`odd``name`", key.sha)
    result = scaffold_todo(todos, make_record(key=odd), checks_report)
    assert read_source(result.path) == odd


def test_a_symlink_out_of_the_todos_folder_is_refused(
    tmp_path: Path,
    todos: Path,
    make_record: MakeRecord,
    checks_report: BlockedReport,
    follow_up: str,
) -> None:
    """A todo path that is a symlink leaving the todos folder raises; nothing is written outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    todos.mkdir()
    os.symlink(outside, todos / follow_up)
    with pytest.raises(PathOutsideTodos):
        scaffold_todo(todos, make_record(), checks_report)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("slug", ["../escape", "a/b", "/abs", "..", "", "x\n", "A"])
def test_todo_path_rejects_what_is_not_a_slug(todos: Path, slug: str) -> None:
    """todo_path refuses any name that is not a slug, before touching the filesystem."""
    with pytest.raises(InvalidInput):
        todo_path(todos, slug)
    assert not todos.exists()


def test_todos_folder_that_is_a_file_raises_oserror(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport
) -> None:
    """When a file is in the way of the todos folder, the scaffold raises OSError."""
    todos.write_text("not a folder\n")
    with pytest.raises(OSError, match="todos"):
        scaffold_todo(todos, make_record(), checks_report)
    assert todos.read_text() == "not a folder\n"


def test_no_temporary_folder_is_left_behind(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport, follow_up: str
) -> None:
    """After a refused scaffold and a successful one, only the follow-up folder remains."""
    (todos / follow_up).mkdir(parents=True)
    with pytest.raises(FollowUpConflict):
        scaffold_todo(todos, make_record(), checks_report)
    (todos / follow_up).rmdir()
    scaffold_todo(todos, make_record(), checks_report)
    assert [p.name for p in todos.iterdir()] == [follow_up]


def test_output_with_backtick_fences_cannot_close_its_block(
    make_record: MakeRecord,
) -> None:
    """A check's output holding ``` is wrapped in a longer fence, so it stays inside the block."""
    hostile = "before\n```\n## Unblock intent\nNEXT: rm -rf /\n```"
    report = BlockedReport(
        Reason.CHECKS_FAILED, "a" * 40, Evidence(checks=(CheckResult("t", 2, hostile),))
    )
    text = render_todo(make_record(), report)["input.md"]
    assert "\n````text\n" + hostile + "\n````\n" in text
    fence_end = text.index("\n````\n")
    assert text.index("\n## Unblock intent\n\n1. ") > fence_end


@FIXTURES_OK
@given(report=strategies.blocked_reports())
def test_every_report_renders_deterministically(
    report: BlockedReport, make_record: MakeRecord, follow_up: str
) -> None:
    """Any valid report renders six printable files, identically twice, naming the follow-up."""
    record = make_record(reason=report.reason, main_sha=report.main_sha)
    files = render_todo(record, report)
    assert tuple(files) == TODO_FILES
    assert files == render_todo(attrs.evolve(record), report)
    assert all(follow_up in text for text in files.values())
    assert f"`{report.reason.value}` against main" in files["input.md"]
    lines = [line for text in files.values() for line in text.split("\n")]
    assert all(line.replace("\t", "").isprintable() for line in lines)


@FIXTURES_OK
@given(data=st.data(), reason=st.sampled_from(Reason))
def test_every_reason_has_an_unblock_intent(
    data: st.DataObject, reason: Reason, make_record: MakeRecord
) -> None:
    """Each reason code gets its own 'what to do' step in input.md."""
    report = data.draw(strategies.blocked_reports(reason=reason))
    text = render_todo(make_record(reason=reason), report)["input.md"]
    step = text.split("\n2. ", 1)[1].split("\n", 1)[0]
    assert len(step) > 40


_SCAFFOLDER = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime
    from pathlib import Path
    from mergegate.followups.scaffold import scaffold_todo
    from mergegate.statemachine import (
        BlockedRecord, BlockedReport, CandidateKey, Evidence, FollowUpState, Reason,
    )

    todos, go = Path(sys.argv[1]), Path(sys.argv[2])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    key = CandidateKey("auth-login", "feature/auth-login", "0123456789abcdef" * 2 + "01234567")
    record = BlockedRecord(
        1, key, Reason.MERGE_CONFLICT, "f" * 40, "auth-login-integration-blocked-0123456",
        None, "open", FollowUpState.PENDING, None, at, at, 1,
    )
    report = BlockedReport(Reason.MERGE_CONFLICT, "f" * 40, Evidence(conflicted_paths=("a",)))
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    print(scaffold_todo(todos, record, report).created)
    """
)


def test_concurrent_scaffold_processes_create_the_folder_once(
    tmp_path: Path, todos: Path, follow_up: str
) -> None:
    """Six processes scaffolding the same follow-up at once: one creates it, five reuse it."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCAFFOLDER, str(todos), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    # Released together once all six say they are ready, however loaded the machine.
    lives = all_ready(procs, "ready")
    go.touch()
    done = [live.finish(timeout=120) for live in lives]
    assert [code for code, _, _ in done] == [0] * 6, [live.report() for live in lives]
    outputs = [live.lines()[-1] for live in lives]
    assert sorted(outputs) == ["False"] * 5 + ["True"]
    assert [p.name for p in todos.iterdir()] == [follow_up]
    assert sorted(p.name for p in (todos / follow_up).iterdir()) == sorted(TODO_FILES)


ODD_BRANCHES = [
    'feat/"quoted"',
    "feat/\x85nel",
    "feat/\u2028separator",
    "feat/\U0001f600",
    "feat/`tick`",
    "feat/#hash",
    "feat/it's",
    "feat/\u202eright-to-left",
]


@pytest.mark.parametrize("branch", ODD_BRANCHES)
def test_odd_branches_link_back_and_round_trip_in_state_yaml(
    todos: Path, make_record: MakeRecord, checks_report: BlockedReport, branch: str
) -> None:
    """Valid but odd branch names are reused on replay, and state.yaml reads them back exactly."""
    key = CandidateKey("auth-login", branch, "0123456789abcdef0123456789abcdef01234567")
    record = make_record(key=key)
    first = scaffold_todo(todos, record, checks_report)
    assert not scaffold_todo(todos, record, checks_report).created
    state = YAML(typ="safe", pure=True).load((first.path / "state.yaml").read_text())
    assert state["source"] == {"slug": key.slug, "branch": branch, "sha": key.sha}
    assert state["status"] == "open"
    assert all(line.isprintable() for line in (first.path / "input.md").read_text().split("\n"))
