"""The gate is the operator's: a candidate that changes the configuration waits for approval.

A non-bare integration repository with ``main`` checked out is used, so the
configuration in force is the committed ``mergegate.toml`` of ``main`` (its
work tree follows ``main``). Its one check appends ``TAG:SLUG`` to a marks
file outside the repositories, so a test can tell which configuration's check
ran for which candidate, and that none ran for a held one.
"""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path

import pytest

from ..gitrepo import init_repo
from .conftest import Scratch, git, states


class Gate(Scratch):
    """The Scratch runner on a non-bare integration repository, ``integ``."""

    @property
    def bare(self) -> Path:
        return self.root / "integ"

    @property
    def db(self) -> Path:
        return self.root / "integ" / ".git" / "mergegate" / "mergegate.sqlite3"

    @property
    def marks(self) -> list[str]:
        path = self.root / "marks"
        return path.read_text().split() if path.exists() else []


def _config(root: Path, tag: str) -> str:
    return (
        '[[checks]]\nname = "mark"\n'
        f"argv = 'echo \"{tag}:$MERGEGATE_SLUG\" >> {root / 'marks'}'\nshell = true\n"
    )


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    """``main`` holds a mergegate.toml whose check marks ``old:SLUG``; the store is initialized."""
    g = Gate(tmp_path)
    init_repo(g.bare)
    (g.bare / "mergegate.toml").write_text(_config(tmp_path, "old"))
    (g.bare / "README.md").write_text("# gate\n")
    git(g.bare, "add", "mergegate.toml", "README.md")
    git(g.bare, "commit", "-qm", "initial")
    git(tmp_path, "clone", "-q", str(g.bare), str(g.work))
    assert g("init").code == 0
    return g


def _edit_gate(g: Gate, tag: str, branch: str = "gate-edit") -> str:
    return g.commit(branch, "main", f"checks mark {tag}", {"mergegate.toml": _config(g.root, tag)})


def _next_lines(g: Gate, slug: str) -> list[str]:
    lines = g("show", slug).stdout.splitlines()
    return [ln.removeprefix("NEXT: ") for ln in lines if ln.startswith("NEXT: ")]


def test_a_config_edit_is_held_before_its_checks_with_diff_and_follow_up(gate: Gate) -> None:
    """config_changed: no check ran, the evidence names the file and its diff, a todo exists."""
    sha = _edit_gate(gate, "new")
    assert gate("submit", "gate-edit").code == 0
    ran = gate("run", "--once")
    assert ran.code == 3, ran.stderr
    assert gate.marks == []
    doc = gate("--json", "show", "gate-edit").doc["result"]
    assert doc["candidate"]["state"] == "blocked"
    blocked = doc["blocked"]
    assert blocked["reason"] == "config_changed"
    assert "files:      mergegate.toml" in gate("show", "gate-edit").stdout
    follow_up = blocked["follow_up_slug"]
    todo = gate.bare / "todos" / follow_up
    assert (todo / "state.yaml").is_file()
    text = (todo / "input.md").read_text()
    assert '+argv = \'echo "new:$MERGEGATE_SLUG"' in text
    assert '-argv = \'echo "old:$MERGEGATE_SLUG"' in text
    assert _next_lines(gate, "gate-edit") == [
        f'mergegate approve gate-edit --sha {sha} --why "..."',
        "mergegate resume gate-edit",
        "mergegate apply gate-edit",
    ]


def test_the_printed_next_lines_integrate_it_under_mains_checks_then_the_new_ones(
    gate: Gate,
) -> None:
    """Approve, resume, apply as printed: its checks are main's; a later candidate gets the new."""
    sha = _edit_gate(gate, "new")
    assert gate("submit", "gate-edit").code == 0
    assert gate("run", "--once").code == 3
    for line in _next_lines(gate, "gate-edit"):
        done = gate(*shlex.split(line)[1:])
        assert done.code == 0, (line, done.stderr)
    assert states(gate)["gate-edit"] == "integrated"
    assert gate.marks == ["old:gate-edit"]
    with sqlite3.connect(gate.db) as conn:
        rows = conn.execute("SELECT slug, sha, why, actor FROM approvals").fetchall()
    conn.close()
    assert rows == [("gate-edit", sha, "...", "tester")]
    gate.commit("later", "main", "unrelated", {"notes.txt": "later\n"})
    assert gate("submit", "later").code == 0
    assert gate("run", "--once").code == 0
    assert gate.marks == ["old:gate-edit", "new:later"]


def test_a_candidate_editing_another_file_is_not_held(gate: Gate) -> None:
    """A change that leaves the configuration alone is checked and integrated as ever."""
    gate.commit("docs", "main", "docs", {"README.md": "# gate, documented\n"})
    assert gate("submit", "docs").code == 0
    assert gate("run", "--once").code == 0
    assert states(gate) == {"docs": "integrated"}
    assert gate.marks == ["old:docs"]


def test_hostile_approvals_are_refused_in_one_line_and_write_nothing(gate: Gate) -> None:
    """Short, non-hex or stale shas, an unknown slug and an empty why: exit 2, nothing written."""
    sha = _edit_gate(gate, "new")
    other = gate.commit("other", "main", "other", {"o.txt": "o\n"})
    assert gate("submit", "gate-edit").code == 0
    assert gate("run", "--once").code == 3
    before = gate.snapshot()
    for args, says in (
        (["gate-edit", "--sha", sha[:12], "--why", "ok"], "--sha"),
        (["gate-edit", "--sha", "z" * 40, "--why", "ok"], "--sha"),
        (["gate-edit", "--sha", other, "--why", "ok"], f"gate-edit is at {sha}"),
        (["nobody", "--sha", sha, "--why", "ok"], "nobody"),
        (["gate-edit", "--sha", sha, "--why", "  "], "--why"),
        (["-x", "--sha", sha, "--why", "ok"], ""),
    ):
        done = gate("approve", *args)
        assert done.code == 2, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert says in done.stderr, done.stderr
        assert gate.snapshot() == before
    assert states(gate)["gate-edit"] == "blocked"


def test_an_approval_is_for_one_sha_a_new_config_change_is_held_again(gate: Gate) -> None:
    """Approved at one sha, resumed at a new tip that edits the gate again: held again."""
    first = _edit_gate(gate, "new")
    assert gate("submit", "gate-edit").code == 0
    assert gate("run", "--once").code == 3
    assert gate("approve", "gate-edit", "--sha", first, "--why", "reviewed").code == 0
    again = _edit_gate(gate, "newer")
    resumed = gate("resume", "gate-edit")
    assert resumed.code == 0, resumed.stderr
    assert gate("run", "--once").code == 3
    doc = gate("--json", "show", "gate-edit").doc["result"]
    assert (doc["candidate"]["sha"], doc["blocked"]["reason"]) == (again, "config_changed")
    assert gate.marks == []
    stale = gate("approve", "gate-edit", "--sha", first, "--why", "reviewed")
    assert stale.code == 2


def test_the_chain_holds_a_config_edit_and_integrates_the_rest(gate: Gate) -> None:
    """run --once --concurrency 3: the config edit is held, its neighbours integrate."""
    gate.commit("c0", "main", "c0", {"c0.txt": "0\n"})
    _edit_gate(gate, "new", branch="c1")
    gate.commit("c2", "main", "c2", {"c2.txt": "2\n"})
    for slug in ("c0", "c1", "c2"):
        assert gate("submit", slug).code == 0
    ran = gate("run", "--once", "--concurrency", "3")
    assert ran.code == 3, ran.stderr
    assert states(gate) == {"c0": "integrated", "c1": "blocked", "c2": "integrated"}
    assert gate("--json", "show", "c1").doc["result"]["blocked"]["reason"] == "config_changed"
    assert sorted(gate.marks) == ["old:c0", "old:c2"]


def test_the_chain_checks_the_links_after_an_approved_edit_by_the_new_gate(gate: Gate) -> None:
    """run --once --concurrency 3: links after an approved config edit run the new checks."""
    gate.commit("c0", "main", "c0", {"c0.txt": "0\n"})
    sha = _edit_gate(gate, "new", branch="c1")
    gate.commit("c2", "main", "c2", {"c2.txt": "2\n"})
    gate.commit("c3", "main", "c3", {"c3.txt": "3\n"})
    for slug in ("c0", "c1", "c2", "c3"):
        assert gate("submit", slug).code == 0
    assert gate("approve", "c1", "--sha", sha, "--why", "reviewed").code == 0
    ran = gate("run", "--once", "--concurrency", "3")
    assert ran.code == 0, ran.stderr
    assert set(states(gate).values()) == {"integrated"}
    assert gate.marks[:2] == ["old:c0", "old:c1"], gate.marks
    assert sorted(gate.marks[2:]) == ["new:c2", "new:c3"], gate.marks
