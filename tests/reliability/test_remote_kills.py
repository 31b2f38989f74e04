"""Kill ``mergegate run`` while its push sits on a real server, recover at once: they agree.

The issue this answers: a killed integrator's push, held in the server's
``pre-receive``, landed after ``mergegate recover`` had recorded the candidate
``apply_interrupted`` (5 of 6 tries), because the server's receive-pack
outlives its client. Now every move of the server's ``main`` carries the fence
token and recovery advances the fence first, so the late push is refused by
the server itself, or it landed first and recovery integrates the candidate.

Each round: new candidates are pushed by a developer and submitted; ``run``
(serial, or ``--concurrency 3``) starts; the test waits until the server's
hook holds a push of ``main`` (the hook names its receive-pack), sends
SIGKILL to ``run``, runs ``mergegate recover`` at once (again while it says
a move is in flight), waits for that receive-pack to end, and checks that the
store and the server agree: a candidate is integrated exactly when the
server's ``main`` merges it, once; nothing is left ``applying``; ``verify``
is clean. The counts go to the reliability figures.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ..gitrepo import git
from ..gitserver import GitServer, Team, make_team

#: Seconds the server's hook holds each push of main: the window the kill lands in.
HOLD = 2.0
#: Kills per mode and store; bounded so one store's loop stays well under three minutes.
ROUNDS = 5

_CONFIG = "lease_ttl = 30\npush_timeout = 30\nmax_main_retries = 5\n"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """Where the team's store lives: the default SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return {}
    url: str = request.getfixturevalue("pg_url")
    return {"MERGEGATE_DB": url}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait(what: str, predicate: object, timeout: float, seen: object = None) -> None:
    deadline = time.monotonic() + timeout
    assert callable(predicate)
    while not predicate():
        if time.monotonic() > deadline:
            detail = seen() if callable(seen) else ""
            pytest.fail(f"waited {timeout:g}s for {what}; seen: {detail}")
        time.sleep(0.01)


def _candidates(team: Team) -> dict[str, tuple[str, str]]:
    listed = team.mg("--json", "list", "--all")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)["result"]["candidates"]
    return {r["slug"]: (r["state"], r["sha"]) for r in rows}


def _merged(team: Team) -> list[str]:
    """The candidate shas the server's main merges, in first-parent order."""
    log = git(team.served, "log", "--first-parent", "--format=%B%x00", "refs/heads/main")
    return re.findall(r"^Candidate: ([0-9a-f]{40})$", log, re.M)


def _agree(team: Team) -> None:
    """The store and the server agree: integrated exactly when merged, once; verify clean."""
    rows = _candidates(team)
    merged = _merged(team)
    assert len(merged) == len(set(merged)), f"a candidate merged twice: {merged}"
    applying = [slug for slug, (state, _sha) in rows.items() if state == "applying"]
    assert not applying, f"left applying after recovery: {applying}"
    integrated = {sha for state, sha in rows.values() if state == "integrated"}
    assert integrated == set(merged), (
        f"store integrated {sorted(integrated)} but the server's main merges {sorted(merged)}"
    )
    verify = team.mg("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert git(team.integ, "status", "--porcelain", "--untracked-files=no") == ""


def _recover(team: Team, tally: Counter[str]) -> None:
    """``mergegate recover`` at once, and again while a dying mover still holds main."""
    deadline = time.monotonic() + 20
    while True:
        done = team.mg("--json", "recover")
        if done.returncode == 0:
            tally["recoveries"] += 1
            return
        assert done.returncode == 4, done.stdout + done.stderr
        assert "in flight" in done.stderr, done.stderr
        tally["recover_refused_in_flight"] += 1
        assert time.monotonic() < deadline, f"recover kept refusing: {done.stderr}"
        time.sleep(0.05)


def _round(team: Team, mode: str, n: int, tally: Counter[str]) -> None:
    """Submit fresh candidates, kill run while a push of main sits on the server, recover."""
    width = 1 if mode == "serial" else 3
    for k in range(width + 1):
        slug = f"{mode}-{n}-{k}"
        team.push(slug, {f"{slug}.txt": f"{slug}\n"})
        assert team.mg("submit", slug).returncode == 0
    before = len(_merged(team))
    receiving = team.served / "test-receiving"
    receiving.unlink(missing_ok=True)
    (team.served / "test-sleep").write_text(f"{HOLD}\n")
    argv = [sys.executable, "-m", "mergegate.cli", "run", "--once", "--concurrency", str(width)]
    run = subprocess.Popen(
        argv,
        cwd=team.integ,
        env=team.mg_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(
            "the server's hook to hold a push of main",
            lambda: receiving.exists() and receiving.read_text().strip() != "",
            60,
            lambda: (run.poll(), receiving.exists()),
        )
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    tally["kills"] += 1
    _recover(team, tally)
    holder = int(receiving.read_text().split()[0])
    # The killed mover's push ends on the server only now: refused, or landed before the fence.
    _wait(f"the server's receive-pack {holder} to end", lambda: not _alive(holder), 30)
    (team.served / "test-sleep").unlink()
    _agree(team)
    # The held push is the run's first: it landed before the fence moved (and
    # recovery integrated it), or the server refused it once the fence moved.
    landed = len(_merged(team)) - before
    assert landed in (0, 1), landed
    tally["held_push_landed_then_integrated" if landed else "held_push_refused_by_server"] += 1


def _drain(team: Team) -> None:
    """Resume what the kills blocked and integrate the whole queue; they still agree."""
    for slug, (state, _sha) in _candidates(team).items():
        if state == "blocked":
            assert team.mg("remediate", slug).returncode == 0
            resumed = team.mg("resume", slug, "--force", "--why", "the integrator was killed")
            assert resumed.returncode == 0, resumed.stderr
    ran = team.mg("run", "--once")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    _agree(team)
    assert {state for state, _sha in _candidates(team).values()} == {"integrated"}


@pytest.mark.slow
def test_remote_kill_loop_store_and_server_agree(
    git_server: GitServer, tmp_path: Path, store_env: dict[str, str], tally: Counter[str]
) -> None:
    """SIGKILL run (serial and --concurrency 3) mid-push, recover at once: they agree every time."""
    team = make_team(git_server, tmp_path, _CONFIG, store_env)
    backend = "postgres" if store_env else "sqlite"
    counts: Counter[str] = Counter()
    began = time.monotonic()
    for mode in ("serial", "chain"):
        for n in range(ROUNDS):
            _round(team, mode, n, counts)
    _drain(team)
    merged = _merged(team)
    counts["candidates_merged_once"] = len(merged)
    seconds = time.monotonic() - began
    line = ", ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"\nremote kill loop ({backend}): {line}, seconds={seconds:.1f}")
    for key, value in counts.items():
        tally[f"remote_kill_{backend}_{key}"] += value
    assert counts["kills"] == 2 * ROUNDS
