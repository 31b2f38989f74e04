"""A stranger's `remote = "origin"` clone where several mergegate processes fetch at once.

Each fetch into ``refs/remotes/origin/<branch>`` takes git's lock on that ref with a
compare-and-swap, so two processes fetching the same force-pushed branch race, and the
loser used to fail the whole command: exit 1, ``cannot lock ref '…': is at … but expected
…``. Now the loser fetches again (apply/remote.py, docs/apply.md), and no command fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ..gitrepo import git
from ..gitserver import GitServer, Team, make_team
from ..procio import LiveOutput

ROUNDS = 8
#: Three submits at once on the one branch, with the paused run's fetch woken by each.
SLUGS = ("c-a", "c-b", "c-c")


@pytest.fixture
def team(git_server: GitServer, tmp_path: Path) -> Team:
    """A team with no checks: only the fetches matter here."""
    return make_team(git_server, tmp_path, "")


def _force_push(team: Team, n: int) -> str:
    """Rewrite ``churn`` in the developer's clone and force-push it.

    Each rewrite carries 4 MB that does not compress, so each fetch of it takes long
    enough for the fetches of several processes to overlap, as on a real network.
    """
    git(team.dev, "checkout", "-q", "-B", "churn", "origin/main")
    (team.dev / "churn.txt").write_text(f"{n}\n")
    (team.dev / "churn.bin").write_bytes(os.urandom(4 << 20))
    git(team.dev, "add", "churn.txt", "churn.bin")
    git(team.dev, "commit", "-q", "-m", f"churn {n}")
    git(team.dev, "push", "-q", "-f", "origin", "churn:refs/heads/churn")
    return git(team.dev, "rev-parse", "HEAD")


def _mg(team: Team, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", *args],
        cwd=team.integ,
        env=team.mg_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_cli_concurrent_fetches_of_a_force_pushed_branch_never_fail_a_command(
    team: Team,
) -> None:
    """Paused run up; each round force-pushes churn, then three submits fetch it at once: all 0."""
    assert team.mg("pause", "--why", "fetch race").returncode == 0
    with LiveOutput(_mg(team, "run", "--poll", "0.1")) as run:
        run.wait_for("paused", stream="stdout", timeout=30)
        failures = []
        for n in range(ROUNDS):
            sha = _force_push(team, n)
            # Two slugs on the one branch: both fetch refs/remotes/origin/churn at once.
            procs = [_mg(team, "submit", slug, "--branch", "churn") for slug in SLUGS]
            for proc in procs:
                _out, err = proc.communicate(timeout=60)
                if proc.returncode != 0 or "Traceback" in err:
                    failures.append((n, proc.returncode, err.strip()))
            assert git(team.integ, "rev-parse", "refs/remotes/origin/churn") == sha
        assert failures == [], failures
        # The run fetched all along (each submit wakes it, and so does --poll): never in vain.
        said = run.text("stdout") + run.text("stderr")
        assert "cannot lock ref" not in said, run.report()
        assert "waiting" not in said, run.report()
        run.proc.send_signal(signal.SIGINT)
        code, _out, _err = run.finish(timeout=30)
        assert code in (0, 130), run.report()
    for slug in SLUGS:
        assert team.state(slug) == "pending"


def test_contended_is_only_gits_lost_ref_lock() -> None:
    """git's lost-lock words are contention; a server that is down or a D/F clash is not."""
    from mergegate.apply.remote import contended

    assert contended(
        "error: cannot lock ref 'refs/remotes/origin/feat-c': is at 582fe33a but expected ba47a55b"
    )
    assert contended(
        "error: cannot lock ref 'refs/remotes/origin/main': Unable to create "
        "'/r/.git/refs/remotes/origin/main.lock': File exists."
    )
    assert not contended("fatal: unable to connect to 127.0.0.1:\nConnection refused")
    assert not contended(
        "error: cannot lock ref 'refs/remotes/origin/a/b': 'refs/remotes/origin/a' exists; "
        "cannot create 'refs/remotes/origin/a/b'"
    )


def test_fetch_contended_on_every_try_is_exit_4() -> None:
    """Losing git's ref lock on every try is a concurrent writer that won: exit 4, one line."""
    from mergegate.apply.remote import FetchContended
    from mergegate.cli.errors import exit_code_for

    err = FetchContended("/r", "origin", "cannot fetch", "another process; run it again")
    assert exit_code_for(err) == 4
    assert "\n" not in str(err)
