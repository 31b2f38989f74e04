"""Containment through the command line: defaults get the same path checks as explicit
values, nothing under todos/ is followed through a symlink, and a folder mergegate did not
create never satisfies the resume gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import MakeScratch, Scratch

FOLLOW_UP = "new-greeting-integration-blocked-{sha7}"


def _queued(make_scratch: MakeScratch) -> Scratch:
    """add-docs and new-greeting submitted; applying both blocks new-greeting on a conflict."""
    s = make_scratch("ready")
    assert s("submit", "add-docs", "--sha", s.shas["add-docs"]).code == 0
    assert s("submit", "new-greeting", "--sha", s.shas["new-greeting"]).code == 0
    return s


def _outside(s: Scratch) -> Path:
    path = s.root / "outside"
    path.mkdir()
    return path


@pytest.mark.parametrize("explicit", [False, True])
def test_todos_symlink_outside_is_refused_with_or_without_a_file(
    make_scratch: MakeScratch, explicit: bool
) -> None:
    """A todos symlink out of the repository exits 2 naming todos; nothing is written outside."""
    s = _queued(make_scratch)
    outside = _outside(s)
    s.todos.symlink_to(outside)
    if explicit:
        (s.bare / "mergegate.toml").write_text('todos = "todos"\n')
    before = s.snapshot()
    r = s("apply")
    assert r.code == 2, r.stdout
    assert r.stderr.count("\n") == 1
    shown = "'todos'" if explicit else "'todos' (the default)"
    assert f"todos: {shown} resolves to {outside}, outside the repository" in r.stderr
    assert list(outside.iterdir()) == []
    assert s.snapshot() == before


def test_default_roadmap_symlink_outside_is_refused(make_scratch: MakeScratch) -> None:
    """A todos/roadmap.yaml symlink out of the repository exits 2; its target is unchanged."""
    s = _queued(make_scratch)
    outside = _outside(s)
    target = outside / "roadmap.yaml"
    target.write_text("- slug: theirs\n")
    s.todos.mkdir()
    (s.todos / "roadmap.yaml").symlink_to(target)
    r = s("apply")
    assert r.code == 2
    assert "roadmap: 'todos/roadmap.yaml' (the default) resolves to" in r.stderr
    assert target.read_text() == "- slug: theirs\n"
    assert sorted(p.name for p in outside.iterdir()) == ["roadmap.yaml"]
    assert (s.todos / "roadmap.yaml").is_symlink()


def test_roadmap_symlink_inside_is_refused_when_writing(make_scratch: MakeScratch) -> None:
    """A roadmap symlink to a file inside the repository is not followed: the follow-up fails."""
    s = _queued(make_scratch)
    target = s.bare / "ROADMAP.yaml"
    target.write_text("- slug: theirs\n")
    s.todos.mkdir()
    (s.todos / "roadmap.yaml").symlink_to(target)
    assert s("apply").code == 0
    r = s("apply")
    assert r.code == 3
    assert "INTEGRATION_BLOCKED_FOLLOWUP_FAILED" in r.stdout
    assert "roadmap.yaml is a symlink" in r.stdout
    assert target.read_text() == "- slug: theirs\n"
    assert (s.todos / "roadmap.yaml").is_symlink()


def test_lock_symlink_never_truncates_its_target(make_scratch: MakeScratch) -> None:
    """A roadmap.yaml.lock symlink to a file outside is refused; that file keeps its bytes."""
    s = _queued(make_scratch)
    precious = _outside(s) / "precious.txt"
    precious.write_text("precious\n")
    s.todos.mkdir()
    (s.todos / "roadmap.yaml.lock").symlink_to(precious)
    assert s("apply").code == 0
    r = s("apply")
    assert r.code == 3
    assert "roadmap.yaml.lock is a symlink" in r.stdout
    assert precious.read_text() == "precious\n"
    assert not (s.todos / "roadmap.yaml").exists()


def test_foreign_done_folder_does_not_satisfy_the_resume_gate(make_scratch: MakeScratch) -> None:
    """A folder that was there before the block, state.yaml done, never lets resume through."""
    s = _queued(make_scratch)
    sha = s.shas["new-greeting"]
    folder = s.todos / FOLLOW_UP.format(sha7=sha[:7])
    folder.mkdir(parents=True)
    # Forged to look linked: only the store knows mergegate never created it.
    (folder / "state.yaml").write_text(
        "status: done\n"
        f'follow_up: "{folder.name}"\n'
        "source:\n"
        '  slug: "new-greeting"\n'
        '  branch: "new-greeting"\n'
        f'  sha: "{sha}"\n'
    )
    assert s("apply").code == 0
    blocked = s("apply")
    assert blocked.code == 3
    assert "INTEGRATION_BLOCKED_FOLLOWUP_FAILED" in blocked.stdout
    assert "FollowUpConflict" in blocked.stdout
    assert s("remediate", "new-greeting").code == 0
    refused = s("resume", "new-greeting")
    assert refused.code == 4, refused.stderr
    assert refused.stderr.count("\n") == 1
    assert "never created by mergegate" in refused.stderr
    assert s("--json", "show", "new-greeting").doc["result"]["candidate"]["state"] == "remediating"
    # Moving the foreign folder away lets mergegate create its own, which then resolves.
    folder.rename(s.root / "foreign")
    assert s("followups", "sync").code == 0
    assert s("followups", "done", "new-greeting").code == 0
    assert s("resume", "new-greeting", "--same-sha", "--note", "conflict settled on main").code == 0
