"""Several resolved rules from mergegate.toml, as an operator writes them: a list is any of them,
``resolved_combine = "all"`` needs every one, and a bad value is one line that writes nothing."""

from __future__ import annotations

import shutil

import pytest

from .conftest import Scratch


def _follow_up(s: Scratch) -> str:
    return str(s("show", "new-greeting", "--json").doc["result"]["blocked"]["follow_up_slug"])


def test_a_list_of_rules_is_resolved_by_any_of_them(blocked: Scratch) -> None:
    """resolved = [state-done, folder-removed]: removing the folder by hand lets resume through."""
    (blocked.bare / "mergegate.toml").write_text(
        'resolved = ["state-done", "folder-removed"]\n', encoding="utf-8"
    )
    fu = _follow_up(blocked)
    listed = blocked("--json", "followups", "list").doc["result"]
    assert listed["rule"] == "state-done or folder-removed"
    [entry] = listed["follow_ups"]
    assert entry["resolved"] is False
    assert "; or " in entry["unresolved_reason"]
    assert blocked("remediate", "new-greeting").code == 0
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "n").code == 4
    shutil.rmtree(blocked.todos / fu)  # the host's own way: the folder is gone
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "n").code == 0


def test_all_rules_are_marked_by_done_and_needed_by_resume(blocked: Scratch) -> None:
    """resolved_combine = all: done satisfies both rules; with one of them undone, resume waits."""
    (blocked.bare / "mergegate.toml").write_text(
        'resolved = ["state-done", "roadmap-gone"]\nresolved_combine = "all"\n', encoding="utf-8"
    )
    fu = _follow_up(blocked)
    assert blocked("remediate", "new-greeting").code == 0
    done = blocked("--json", "followups", "done", fu)
    assert done.code == 0, done.stderr
    assert done.doc["result"]["rule"] == "state-done and roadmap-gone"
    assert done.doc["result"]["resolved"] is True
    assert "; " in str(done.doc["result"]["done"])  # one line per rule it satisfied
    assert "status: done" in (blocked.todos / fu / "state.yaml").read_text()
    assert fu not in (blocked.todos / "roadmap.yaml").read_text()
    state = blocked.todos / fu / "state.yaml"
    state.write_text(state.read_text().replace("status: done", "status: open"))
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "n").code == 4
    assert blocked("followups", "done", fu).code == 0
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "n").code == 0


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("resolved = []\n", "at least one rule"),
        ('resolved = ["state-done", "done"]\n', "'done'"),
        ('resolved = ["state-done", "state-done"]\n', "named twice"),
        ('resolved = ["state-done", "folder-removed"]\nresolved_combine = "all"\n', "cannot both"),
        ('resolved = ["state-done", "roadmap-gone"]\nresolved_combine = "every"\n', "'every'"),
        ('resolved = "state-done"\nresolved_combine = "all"\n', "give resolved = [...]"),
        ("resolved = 3\n", "got an integer"),
    ],
    ids=["empty", "unknown", "twice", "contradiction", "bad-combine", "combine-alone", "number"],
)
def test_a_bad_resolved_value_is_one_line_and_writes_nothing(
    blocked: Scratch, toml: str, says: str
) -> None:
    """Each bad value: exit 2, one stderr line naming the key and the problem, nothing written."""
    (blocked.bare / "mergegate.toml").write_text(toml, encoding="utf-8")
    before = blocked.snapshot()
    done = blocked("followups", "done", _follow_up_slug_of(blocked))
    assert done.code == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert "resolved" in done.stderr
    assert says in done.stderr
    assert blocked.snapshot() == before


def _follow_up_slug_of(s: Scratch) -> str:
    """The follow-up's name from its folder (show would refuse the broken configuration too)."""
    [folder] = [p.name for p in s.todos.iterdir() if p.is_dir()]
    return folder
