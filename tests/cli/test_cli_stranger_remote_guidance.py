"""A stranger follows a conflict's guidance with `remote = "origin"`, in a developer clone
whose local `main` is as old as its clone: "merge main into feat-c" said "Already up to
date" there. With a remote, the guidance names `origin/main` and the fetch that brings it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..gitrepo import git, git_env
from ..gitserver import GitServer, make_team


def test_cli_remote_conflict_guidance_names_the_remotes_main_and_its_command_works(
    git_server: GitServer, tmp_path: Path
) -> None:
    """The Fix line's git command, run in a clone with a stale main, brings the conflict."""
    team = make_team(git_server, tmp_path, "")
    # A developer clone made now: its local main never moves after this.
    stale = tmp_path / "stale"
    git(tmp_path, "clone", "-q", team.server.url(team.served), str(stale))
    team.push("feat-c", {"README.txt": "feat-c's words\n"})
    team.push("hotfix", {"README.txt": "the hotfix's words\n"})
    git(team.dev, "push", "-q", "origin", "hotfix:main")
    assert team.mg("submit", "feat-c").returncode == 0
    ran = team.mg("run", "--once")
    assert ran.returncode == 3, ran.stdout + ran.stderr
    shown = team.mg("show", "feat-c").stdout
    fix = next(line for line in shown.splitlines() if line.startswith("Fix:"))
    assert "origin/main" in fix, shown
    assert "merge main into" not in fix, shown
    assert team.mg("show", "feat-c").stdout == shown  # the same stored facts, the same bytes
    command = re.search(r"`(git fetch [^`]+)`", fix)
    assert command is not None, fix
    assert command.group(1) == "git fetch origin && git merge origin/main", fix
    # The stranger's clone: feat-c checked out, main as old as the clone.
    git(stale, "fetch", "-q", "origin")
    git(stale, "checkout", "-q", "-b", "feat-c", "origin/feat-c")
    assert git(stale, "merge", "main") == "Already up to date."  # what the old text led to
    merged = subprocess.run(
        ["bash", "-c", command.group(1)],
        cwd=stale,
        env=git_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert "CONFLICT (content): Merge conflict in README.txt" in merged.stdout, merged.stdout
    (stale / "README.txt").write_text("feat-c's words and the hotfix's\n")
    git(stale, "commit", "-qam", "feat-c: merge origin/main")
    git(stale, "push", "-q", "origin", "feat-c")
    steps = [ln.removeprefix("NEXT: ") for ln in shown.splitlines() if ln.startswith("NEXT: ")]
    for step in steps:
        done = team.mg(*step.split()[1:])
        assert done.returncode == 0, (step, done.stdout, done.stderr)
    assert team.state("feat-c") == "integrated"
