"""verify names an outside move of main and the command that accepts it; that command works.

An operator's hotfix committed straight onto main after the queue's first
integration fails ``verify``, whose line names ``mergegate acknowledge SHA
--why TEXT``; running that printed command (with a reason) logs who and when,
and ``verify`` is then clean.
"""

from __future__ import annotations

import re
import shlex

from .conftest import MakeScratch, Scratch, git


def _hotfix(s: Scratch) -> str:
    """Commit a hotfix straight onto main in the work clone and push it, as a person would."""
    git(s.work, "fetch", "-q", "origin", "main")
    git(s.work, "checkout", "-q", "-B", "main", "origin/main")
    return s.commit("main", "main", "Hotfix straight on main", {"hotfix.txt": "fixed\n"})


def test_an_outside_commit_fails_verify_until_acknowledged(make_scratch: MakeScratch) -> None:
    """verify exits 1 naming the hotfix and the command; the printed command, run, makes it pass."""
    s = make_scratch("ready")
    assert s("submit", "add-docs").code == 0
    assert s("run", "--once").code == 0
    assert s("verify").code == 0
    hotfix = _hotfix(s)
    failed = s("verify")
    assert failed.code == 1
    [line] = [ln for ln in failed.stdout.splitlines() if ln.startswith("REPOSITORY")]
    assert line.startswith(f"REPOSITORY commit {hotfix}: a commit that moved main outside")
    printed = re.search(r"`(mergegate acknowledge [^`]+)`", line)
    assert printed is not None, line
    argv = shlex.split(printed.group(1).replace("TEXT", "'hotfix for the outage'"))
    done = s(*argv[1:])
    assert done.code == 0, done.stderr
    assert done.stdout.startswith(f"acknowledged {hotfix}: hotfix for the outage (by ")
    assert s("verify").code == 0
    again = s("--json", "acknowledge", hotfix[:10], "--why", "hotfix for the outage")
    assert again.code == 0
    assert again.doc["result"]["changed"] is False
    other = s("acknowledge", hotfix, "--why", "another story")
    assert other.code == 2
    assert "already acknowledged" in other.stderr


def test_acknowledge_refuses_a_commit_not_on_main(make_scratch: MakeScratch) -> None:
    """A branch's commit never moved main: refused in one line, nothing logged."""
    s = make_scratch("ready")
    done = s("acknowledge", s.shas["other"], "--why", "not on main")
    assert done.code == 2
    assert done.stderr.count("\n") == 1
    assert "not on the first-parent history" in done.stderr
    listed = s("--json", "acknowledge", s.main(), "--why", "   ")
    assert listed.code == 2
