"""The remote is canonical, through the command line, against a real git daemon.

The team's repository lives on a server (``tests/gitserver.py``); mergegate
runs in an ordinary ``git clone`` of it with ``remote = "origin"``, and
developers push their branches from clones of their own. Nothing is ever
pushed into the integration clone by hand.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..gitrepo import git, git_env, init_repo
from ..gitserver import GitServer, Team, make_team

_CHECK = """
[[checks]]
name = "no-todo"
argv = ["sh", "-c", "! grep -rq TODO --include='*.txt' ."]
timeout = 60
"""


@pytest.fixture
def team(git_server: GitServer, tmp_path: Path) -> Team:
    """A team whose integration clone runs one check (no TODO in a .txt file)."""
    return make_team(git_server, tmp_path, _CHECK)


def _first_parents(team: Team) -> list[str]:
    return git(team.served, "log", "--first-parent", "--format=%s", "refs/heads/main").splitlines()


@pytest.mark.parametrize("concurrency", [1, 3])
def test_cli_remote_outside_push_mid_queue_integrates_all(
    git_server: GitServer, tmp_path: Path, concurrency: int
) -> None:
    """A hotfix pushed to the server's main while c1 is checked: all three integrate on top."""
    pushed = tmp_path / "hotfix-pushed"
    dev = tmp_path / "dev"
    # The check of c1 pushes the hotfix, once, straight to the server's main.
    script = (
        f'if [ "$MERGEGATE_SLUG" = c1 ] && [ ! -e {pushed} ]; then touch {pushed}; '
        f"git -C {dev} push -q origin hotfix:main; fi"
    )
    config = (
        f'\n[[checks]]\nname = "hotfix-meanwhile"\nargv = ["sh", "-c", {json.dumps(script)}]\n'
        "timeout = 60\n"
    )
    team = make_team(git_server, tmp_path, config)
    hotfix = team.push("hotfix", {"hotfix.txt": "hot\n"})
    for n in (1, 2, 3):
        team.push(f"c{n}", {f"c{n}.txt": f"{n}\n"})
        assert team.mg("submit", f"c{n}").returncode == 0
    ran = team.mg("run", "--once", "--concurrency", str(concurrency))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert pushed.exists()
    assert [team.state(f"c{n}") for n in (1, 2, 3)] == ["integrated"] * 3
    subjects = _first_parents(team)
    assert [s.split(" (")[0] for s in subjects[:3]] == [
        "mergegate: integrate c3",
        "mergegate: integrate c2",
        "mergegate: integrate c1",
    ], subjects
    assert git(team.served, "merge-base", "--is-ancestor", hotfix, "refs/heads/main") == ""
    followups = team.mg("--json", "followups", "list")
    assert json.loads(followups.stdout)["result"]["follow_ups"] == [], followups.stdout
    assert team.mg("verify").returncode == 0
    assert git(team.integ, "rev-parse", "refs/heads/main") == team.served_main()


def test_cli_remote_developer_fix_is_requeued_by_the_next_lines(team: Team) -> None:
    """A developer pushes the fix to the server; the printed NEXT lines, run as is, integrate it."""
    team.push("greet", {"greet.txt": "hello TODO\n"})
    assert team.mg("submit", "greet").returncode == 0
    ran = team.mg("run", "--once")
    assert ran.returncode == 3, ran.stdout + ran.stderr
    assert team.state("greet") == "blocked"
    fixed = team.push("greet", {"greet.txt": "hello\n"})
    shown = team.mg("show", "greet").stdout
    steps = [
        line.removeprefix("NEXT: ") for line in shown.splitlines() if line.startswith("NEXT: ")
    ]
    assert steps, shown
    assert steps[-1].startswith("mergegate apply"), shown
    shim = team.integ.parent / "bin"
    shim.mkdir()
    (shim / "mergegate").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mergegate.cli "$@"\n')
    (shim / "mergegate").chmod(0o755)
    env = {**git_env(), "PATH": f"{shim}:{git_env()['PATH']}"}
    for step in steps:
        done = subprocess.run(
            ["bash", "-c", step],
            cwd=team.integ,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    assert team.state("greet") == "integrated"
    main = team.served_main()
    assert git(team.served, "rev-parse", f"{main}^2") == fixed
    assert team.mg("verify").returncode == 0


def test_cli_remote_submit_fetches_a_pushed_branch(team: Team) -> None:
    """submit of a branch that exists only on the server fetches it into refs/remotes/origin/."""
    sha = team.push("only-there", {"x.txt": "x\n"})
    done = team.mg("--json", "submit", "only-there")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["candidate"]["sha"] == sha
    assert git(team.integ, "rev-parse", "refs/remotes/origin/only-there") == sha
    assert git(team.integ, "branch", "--list", "only-there") == ""


def test_cli_remote_branch_deleted_on_server_is_a_logged_decision(team: Team) -> None:
    """A queued branch deleted on the server blocks precondition_failed naming the remote."""
    team.push("gone", {"gone.txt": "g\n"})
    assert team.mg("submit", "gone").returncode == 0
    git(team.dev, "push", "-q", "origin", ":refs/heads/gone")
    ran = team.mg("run", "--once")
    assert ran.returncode == 3, ran.stdout + ran.stderr
    shown = team.mg("show", "gone").stdout
    assert "precondition_failed" in shown
    assert "not on remote origin (deleted there?)" in shown, shown
    assert git(team.integ, "for-each-ref", "refs/remotes/origin/gone") == ""


def test_cli_remote_down_is_one_line_and_changes_nothing(team: Team) -> None:
    """With the server down, run exits with one line naming the remote; the queue is untouched."""
    team.push("later", {"later.txt": "l\n"})
    assert team.mg("submit", "later").returncode == 0
    with team.server.down():
        ran = team.mg("run", "--once")
    assert ran.returncode != 0
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert "remote origin: cannot fetch" in lines[0], ran.stderr
    assert team.state("later") == "pending"
    ran = team.mg("run", "--once")
    assert ran.returncode == 0, ran.stderr
    assert team.state("later") == "integrated"


def test_cli_remote_refusal_quotes_the_server(team: Team) -> None:
    """A hook's refusal blocks push_rejected; the guidance quotes the server's own message."""
    team.push("frozen", {"frozen.txt": "f\n"})
    assert team.mg("submit", "frozen").returncode == 0
    (team.served / "test-reject").write_text("main is frozen until Monday\n")
    ran = team.mg("run", "--once")
    assert ran.returncode == 3
    shown = team.mg("show", "frozen").stdout
    assert "push_rejected" in shown
    what = next(line for line in shown.splitlines() if line.startswith("What failed:"))
    assert "main is frozen until Monday" in what, shown
    assert "permissions, protection" not in shown


def test_cli_remote_push_timeout_is_checked(team: Team) -> None:
    """push_timeout out of its bounds is exit 2 with one line naming the key and the range."""
    (team.integ / "mergegate.toml").write_text('remote = "origin"\npush_timeout = 0\n')
    done = team.mg("list")
    assert done.returncode == 2
    assert "push_timeout: expected 1 to 3600 seconds, got 0" in done.stderr, done.stderr


DOC = Path(__file__).resolve().parents[2] / "docs" / "operator-procedure.md"
_SEPARATOR = "@@ operator block {} @@"


def _operator_blocks() -> list[str]:
    """The shell blocks of docs/operator-procedure.md marked to run, in order."""
    text = DOC.read_text(encoding="utf-8")
    return re.findall(r"<!-- operator: run -->\n```sh\n(.*?)```", text, re.S)


def test_cli_remote_operator_procedure_runs_verbatim(git_server: GitServer, tmp_path: Path) -> None:
    """The operator procedure, from `git clone` of the server to the fix integrated, runs as is."""
    seed = init_repo(tmp_path / "seed")
    (seed / "README.txt").write_text("team\n")
    git(seed, "add", "README.txt")
    git(seed, "commit", "-qm", "start")
    served = git_server.repo(seed)
    blocks = _operator_blocks()
    assert len(blocks) == 5
    home = tmp_path / "home"
    home.mkdir()
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "mergegate").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mergegate.cli "$@"\n')
    (shim / "mergegate").chmod(0o755)
    lines = ["set -e"]
    for n, block in enumerate(blocks, 1):
        lines += [f"echo '{_SEPARATOR.format(n)}'", block]
    env = {
        **git_env(),
        "HOME": str(home),
        "PATH": f"{shim}:{git_env()['PATH']}",
        "SERVER": git_server.url(served),
    }
    done = subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    parts = re.split(r"^@@ operator block (\d+) @@\n", done.stdout, flags=re.M)
    out = {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}
    assert "run exited 3" in out[3], out[3]
    assert "checks_failed" in out[3], out[3]
    printed = [
        re.sub(r"greeting-integration-blocked-[0-9a-f]{7}", "greeting", line.removeprefix("NEXT: "))
        for line in out[3].splitlines()
        if line.startswith("NEXT: ")
    ]
    documented = [line for line in blocks[4].splitlines() if line.startswith("mergegate ")]
    assert len(printed) == 4, out[3]
    assert printed == documented[:4], (printed, documented)
    main = git(served, "rev-parse", "refs/heads/main")
    fixed = git(home / "dev", "rev-parse", "greeting")
    assert git(served, "rev-parse", f"{main}^2") == fixed
    assert f"{main}\trefs/heads/main" in out[5], out[5]
    assert "refs/mergegate/fence" in out[5], out[5]


def test_cli_remote_resume_before_the_push_says_to_push(team: Team) -> None:
    """resume before the developer pushed the fix: refused, telling them to push it to origin."""
    team.push("early", {"early.txt": "TODO\n"})
    assert team.mg("submit", "early").returncode == 0
    assert team.mg("run", "--once").returncode == 3
    assert team.mg("remediate", "early").returncode == 0
    assert team.mg("followups", "done", "early").returncode == 0
    done = team.mg("resume", "early")
    assert done.returncode == 4, done.stderr
    assert "branch early on origin is still at" in done.stderr, done.stderr
    assert "push the fix to early on origin first (resume fetches it)" in done.stderr
    team.push("early", {"early.txt": "done\n"})
    assert team.mg("resume", "early").returncode == 0
    assert team.mg("apply", "early").returncode == 0
    assert team.state("early") == "integrated"
