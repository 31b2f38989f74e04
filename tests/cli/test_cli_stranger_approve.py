"""A stranger's tries of the config_changed gate and `mergegate approve`, as a team would run them.

Every test works in an ordinary clone (``team``) of a bare "server" repository, with ``main``
checked out and the default SQLite store, and calls ``mergegate`` from the clone's work tree
without ``--repo``, as a person types it. The committed ``mergegate.toml`` has one check that
appends ``old:SLUG`` to a marks file outside the repositories; a candidate that edits the gate
adds a second check that appends ``new:SLUG``, so a test can tell which gate ran for whom.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ..gitrepo import git, git_env, init_repo
from .conftest import Result, watch

_BIN = str(Path(sys.executable).parent)


class Team:
    """A bare server, an ordinary clone of it with ``main`` checked out, and mergegate in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = root / "server.git"
        self.work = root / "team"
        self.marks_file = root / "marks"

    def env(self) -> dict[str, str]:
        env = git_env()
        env["PATH"] = f"{_BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def __call__(self, *args: str) -> Result:
        """``mergegate ARGS`` in the clone's work tree; no traceback may reach stderr."""
        done = subprocess.run(
            [sys.executable, "-m", "mergegate.cli", *args],
            cwd=self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert "Traceback" not in done.stderr, done.stderr
        return Result(done.returncode, done.stdout, done.stderr)

    def bash(self, script: str) -> Result:
        """``bash -e`` on ``script`` in the clone, with ``mergegate`` on PATH."""
        path = self.root / "next.sh"
        path.write_text(script)
        done = subprocess.run(
            ["bash", "-e", str(path)],
            cwd=self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def popen_run(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "mergegate.cli", "run", *args],
            cwd=self.work,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def marks(self) -> list[str]:
        return self.marks_file.read_text().split() if self.marks_file.exists() else []

    def branch(self, name: str, files: dict[str, str], *, append: bool = False) -> str:
        """Commit ``files`` on a new branch ``name`` from ``main``, push it, switch back to main."""
        git(self.work, "switch", "-q", "-c", name, "main")
        for file, text in files.items():
            path = self.work / file
            old = path.read_text() if append and path.exists() else ""
            path.write_text(old + text)
        git(self.work, "add", "--", *files)
        git(self.work, "commit", "-q", "-m", name)
        git(self.work, "push", "-q", "origin", name)
        sha = git(self.work, "rev-parse", "HEAD")
        git(self.work, "switch", "-q", "main")
        return sha

    def gate_edit(self, name: str) -> str:
        """A branch that adds a check marking ``new:SLUG`` to the committed mergegate.toml."""
        toml = _check("newcheck", "new", self.marks_file)
        return self.branch(name, {"mergegate.toml": toml}, append=True)

    def state(self, slug: str) -> str:
        return str(self("--json", "show", slug).doc["result"]["candidate"]["state"])

    def snapshot(self) -> tuple[object, ...]:
        """Every store row, every todos/ file, main: what a command could have written."""
        db = self.work / ".git" / "mergegate" / "mergegate.sqlite3"
        rows: dict[str, list[str]] = {}
        with sqlite3.connect(db) as conn:
            query = "SELECT name FROM sqlite_master WHERE type='table'"
            names = [r[0] for r in conn.execute(query)]
            for name in sorted(names):
                rows[name] = sorted(repr(r) for r in conn.execute(f"SELECT * FROM {name}"))
        conn.close()
        files = {
            str(p.relative_to(self.work)): p.read_bytes()
            for p in sorted((self.work / "todos").rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")
        }
        return rows, files, git(self.work, "rev-parse", "main")


def _check(name: str, tag: str, marks: Path) -> str:
    argv = f"'echo \"{tag}:$MERGEGATE_SLUG\" >> {marks}'"
    return f'\n[[checks]]\nname = "{name}"\nargv = {argv}\nshell = true\n'


@pytest.fixture
def team(tmp_path: Path) -> Team:
    """server.git, its clone ``team`` (main checked out, mergegate.toml committed), a store."""
    t = Team(tmp_path)
    init_repo(t.server, bare=True)
    git(tmp_path, "clone", "-q", str(t.server), str(t.work))
    (t.work / "mergegate.toml").write_text(_check("mark", "old", t.marks_file).lstrip())
    (t.work / "README.md").write_text("# team\n")
    git(t.work, "add", "mergegate.toml", "README.md")
    git(t.work, "commit", "-q", "-m", "initial")
    git(t.work, "push", "-q", "origin", "main")
    assert t("init").code == 0
    return t


def _next(text: str) -> list[str]:
    return [ln.removeprefix("NEXT: ") for ln in text.splitlines() if ln.startswith("NEXT: ")]


def test_config_changed_next_lines_run_verbatim_with_bash_e_in_a_clone(team: Team) -> None:
    """apply SLUG holds the gate edit; its NEXT lines, run verbatim by bash -e, integrate it."""
    sha = team.gate_edit("gate-edit")
    assert team("submit", "gate-edit").code == 0
    held = team("apply", "gate-edit")
    assert held.code == 3, held.stderr
    assert "config_changed" in held.stdout
    assert team.marks == []
    assert "saying why in place of the ..." in held.stdout
    lines = _next(held.stdout)
    assert lines == [
        f'mergegate approve gate-edit --sha {sha} --why "..."',
        "mergegate resume gate-edit",
        "mergegate apply gate-edit",
    ]
    ran = team.bash("\n".join(lines) + "\n")
    assert ran.code == 0, (ran.stdout, ran.stderr)
    assert team.state("gate-edit") == "integrated"
    assert team.marks == ["old:gate-edit"]
    assert "newcheck" in (team.work / "mergegate.toml").read_text()
    team.branch("later", {"later.txt": "later\n"})
    assert team("submit", "later").code == 0
    assert team("apply", "later").code == 0
    assert team.marks == ["old:gate-edit", "old:later", "new:later"]


def test_chain_holds_the_gate_edit_and_shows_next_lines_that_integrate_it(team: Team) -> None:
    """run --once --concurrency 3 holds the edit beside others; show's NEXT lines integrate it."""
    team.branch("c0", {"c0.txt": "0\n"})
    team.gate_edit("c1")
    team.branch("c2", {"c2.txt": "2\n"})
    for slug in ("c0", "c1", "c2"):
        assert team("submit", slug).code == 0
    ran = team("run", "--once", "--concurrency", "3")
    assert ran.code == 3, ran.stderr
    assert "blocked config_changed" in ran.stdout
    assert sorted(team.marks) == ["old:c0", "old:c2"]
    lines = _next(team("show", "c1").stdout)
    script = "\n".join(lines).replace('--why "..."', '--why "reviewed: adds newcheck"')
    done = team.bash(script + "\n")
    assert done.code == 0, (done.stdout, done.stderr)
    assert team.state("c1") == "integrated"


def test_hostile_approvals_in_a_clone_exit_2_in_one_line_and_write_nothing(team: Team) -> None:
    """Short, non-hex, another's sha, unknown slug, empty why, ../x: exit 2, one line, no write."""
    sha = team.gate_edit("gate-edit")
    other = team.branch("other", {"o.txt": "o\n"})
    assert team("submit", "gate-edit").code == 0
    assert team("submit", "other").code == 0
    assert team("apply", "gate-edit").code == 3
    before = team.snapshot()
    history = team("--json", "history", "gate-edit").doc["result"]
    for args in (
        ["gate-edit", "--sha", sha[:12], "--why", "ok"],
        ["gate-edit", "--sha", "g" * 40, "--why", "ok"],
        ["gate-edit", "--sha", other, "--why", "ok"],
        ["nobody", "--sha", sha, "--why", "ok"],
        ["gate-edit", "--sha", sha, "--why", ""],
        ["../x", "--sha", sha, "--why", "ok"],
    ):
        done = team("approve", *args)
        assert done.code == 2, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("mergegate: error:"), done.stderr
        assert team.snapshot() == before, args
    assert team("--json", "history", "gate-edit").doc["result"] == history
    assert team.state("gate-edit") == "blocked"


def test_an_approval_does_not_leak_to_a_new_sha_or_another_slug(team: Team) -> None:
    """Approved at one sha: a new tip, and another slug at the approved sha, are held."""
    first = team.gate_edit("ge")
    git(team.work, "branch", "twin", first)
    assert team("submit", "ge").code == 0
    assert team("submit", "twin").code == 0
    assert team("apply", "ge").code == 3
    assert team("approve", "ge", "--sha", first, "--why", "reviewed").code == 0
    assert team("apply", "twin").code == 3
    git(team.work, "switch", "-q", "ge")
    (team.work / "mergegate.toml").write_text((team.work / "mergegate.toml").read_text() + "# v2\n")
    git(team.work, "commit", "-q", "-am", "v2")
    git(team.work, "switch", "-q", "main")
    assert team("resume", "ge").code == 0
    assert team("apply", "ge").code == 3
    assert team.marks == []


def test_the_todo_commands_of_a_config_changed_block_run_verbatim(team: Team) -> None:
    """input.md's command block for a config_changed block runs verbatim with bash -e."""
    team.gate_edit("gate-edit")
    assert team("submit", "gate-edit").code == 0
    assert team("apply", "gate-edit").code == 3
    follow_up = team("--json", "show", "gate-edit").doc["result"]["blocked"]["follow_up_slug"]
    text = (team.work / "todos" / follow_up / "input.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None, text
    done = team.bash(block.group(1))
    assert done.code == 0, (block.group(1), done.stdout, done.stderr)
    assert team.state("gate-edit") == "integrated"


def test_resume_refusal_of_an_unapproved_gate_edit_does_not_suggest_force(team: Team) -> None:
    """The refusal names approve as the fix, not --force (which cannot settle config_changed)."""
    team.gate_edit("gate-edit")
    assert team("submit", "gate-edit").code == 0
    assert team("apply", "gate-edit").code == 3
    assert team("remediate", "gate-edit").code == 0
    refused = team("resume", "gate-edit")
    assert refused.code == 4, refused.stderr
    assert "mergegate approve gate-edit" in refused.stderr
    assert "force" not in refused.stderr, refused.stderr


def test_run_once_applies_the_new_gate_to_candidates_after_the_approved_edit(team: Team) -> None:
    """One run --once: the pre-approved gate edit integrates, then later runs the new check."""
    sha = team.gate_edit("g")
    team.branch("later", {"later.txt": "later\n"})
    assert team("submit", "g").code == 0
    assert team("approve", "g", "--sha", sha, "--why", "reviewed").code == 0
    assert team("submit", "later").code == 0
    ran = team("run", "--once")
    assert ran.code == 0, (ran.stdout, ran.stderr)
    assert team.marks[0] == "old:g"
    assert "new:later" in team.marks, team.marks


def test_a_running_daemon_gates_later_candidates_with_the_approved_new_check(team: Team) -> None:
    """Daemon up: the edit is held, NEXT lines integrate it, the next one runs the new check."""
    team.gate_edit("g")
    team.branch("later", {"later.txt": "later\n"})
    with watch(team.popen_run()) as live:
        live.wait_for("queue empty")
        assert team("submit", "g").code == 0
        live.wait_for("blocked config_changed")
        ran = team.bash("\n".join(_next(team("show", "g").stdout)) + "\n")
        assert ran.code == 0, (ran.stdout, ran.stderr)
        live.wait_for(lambda ln: ln.split()[1:2] == ["g"] and "integrated" in ln)
        assert team("submit", "later").code == 0
        live.wait_for(lambda ln: "later" in ln and "integrated" in ln)
        assert live.proc is not None
        live.proc.send_signal(signal.SIGTERM)
        live.finish()
    assert "new:later" in team.marks, team.marks


def _dirty_run(team: Team, live: Any) -> None:
    team.branch("d1", {"d1.txt": "d1\n"})
    live.wait_for("queue empty")
    (team.work / "README.md").write_text("# team, edited and not committed\n")
    assert team("submit", "d1").code == 0


def test_run_waits_on_a_dirty_checked_out_main_and_integrates_after_checkout(team: Team) -> None:
    """A dirty main work tree: run prints waiting (checked out, files differ), never blocks."""
    with watch(team.popen_run()) as live:
        _dirty_run(team, live)
        waiting = live.wait_for("waiting:")[-1]
        assert "'main' is checked out" in waiting, waiting
        assert "files differ" in waiting, waiting
        # Nothing was taken: the candidate waits at its place, not the candidate's fault.
        assert team.state("d1") == "pending"
        git(team.work, "checkout", "--", "README.md")
        live.wait_for(lambda ln: "d1" in ln and "integrated" in ln)
        assert live.proc is not None
        live.proc.send_signal(signal.SIGTERM)
        code, out, err = live.finish()
    assert code == 0, (out, err)
    assert ": blocked" not in out, out
    assert "blocked 0" in out, out
    assert team.state("d1") == "integrated"


def test_run_does_not_rerun_the_checks_while_main_work_tree_is_dirty(team: Team) -> None:
    """While main's work tree is dirty, run's retries run the candidate's checks at most once."""
    with watch(team.popen_run()) as live:
        _dirty_run(team, live)
        live.wait_for("waiting:")
        # A window of several backed-off tries (0.05, 0.1, 0.2, 0.4, 0.8 s): none may
        # claim the candidate or run its checks while the edit lasts.
        time.sleep(1.6)
        seen = list(team.marks)
        moves = team("--json", "history", "d1").doc["result"]["transitions"]
        git(team.work, "checkout", "--", "README.md")
        live.wait_for(lambda ln: "d1" in ln and "integrated" in ln)
        assert live.proc is not None
        live.proc.send_signal(signal.SIGTERM)
        live.finish()
    assert seen == [], seen
    assert [m["event"] for m in moves] == ["submit"], moves


def test_list_says_a_config_changed_block_waits_for_an_approval(team: Team) -> None:
    """WAITING FOR of a held gate edit names the approval, not the follow-up todo."""
    team.gate_edit("gate-edit")
    assert team("submit", "gate-edit").code == 0
    assert team("apply", "gate-edit").code == 3
    rows = team("--json", "list").doc["result"]["candidates"]
    waiting = next(r["waiting_for"] for r in rows if r["slug"] == "gate-edit")
    assert "approv" in waiting, waiting


def test_a_short_sha_error_names_a_fix_a_cli_user_can_run(team: Team) -> None:
    """approve --sha ABBREV: the one-line error names a command, not a Python API."""
    sha = team.gate_edit("gate-edit")
    assert team("submit", "gate-edit").code == 0
    assert team("apply", "gate-edit").code == 3
    done = team("approve", "gate-edit", "--sha", sha[:12], "--why", "ok")
    assert done.code == 2
    assert "mergegate.apply" not in done.stderr, done.stderr


def test_approve_with_a_multiline_why_prints_one_line(team: Team) -> None:
    """A --why with a newline is shown escaped, as withdraw shows it: the report stays one line."""
    sha = team.gate_edit("gate-edit")
    assert team("submit", "gate-edit").code == 0
    assert team("apply", "gate-edit").code == 3
    done = team("approve", "gate-edit", "--sha", sha, "--why", "first\nsecond")
    assert done.code == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert "(by " in first, done.stdout


def test_a_checkout_of_main_made_after_run_started_is_followed(team: Team) -> None:
    """Main checked out after run started: run waits on its edit, then moves it with main."""
    team.branch("d1", {"d1.txt": "d1\n"})
    git(team.work, "switch", "-q", "d1")
    with watch(team.popen_run()) as live:
        live.wait_for("queue empty")
        # The person comes back to main and starts an edit: run made its applier before.
        git(team.work, "switch", "-q", "main")
        (team.work / "README.md").write_text("# team, edited and not committed\n")
        assert team("submit", "d1").code == 0
        waiting = live.wait_for("waiting:")[-1]
        assert "'main' is checked out" in waiting, waiting
        assert team.state("d1") == "pending"
        git(team.work, "checkout", "--", "README.md")
        live.wait_for(lambda ln: "d1" in ln and "integrated" in ln)
        assert live.proc is not None
        live.proc.send_signal(signal.SIGTERM)
        code, out, err = live.finish()
    assert code == 0, (out, err)
    # The work tree followed main: its index and files are main's, nothing staged.
    assert (team.work / "d1.txt").read_text() == "d1\n"
    assert git(team.work, "status", "--porcelain", "--untracked-files=no") == ""
