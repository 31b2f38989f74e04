"""`mergegate run` among people: interruptions requeue, checks die with it, it names itself."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import MakeScratch, Scratch, _env, read_until, spawn, states, watch

# Stalls while $STALL names a file, starting a grandchild that writes its pid, so a
# test can see whether anything the check started survives its integrator.
STALL_CHECK = """
[[checks]]
name = "stall"
argv = 'echo $$ >> "$PIDS"; if [ -e "$STALL" ]; then sleep 300 & echo $! >> "$PIDS"; wait; fi'
shell = true
"""


# Waits while $STALL names a file, looking every 50 ms: released by removing it.
POLL_CHECK = """
[[checks]]
name = "poll"
argv = 'while [ -e "$STALL" ]; do sleep 0.05; done'
shell = true
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _history(s: Scratch, slug: str) -> list[dict[str, object]]:
    doc = s("--json", "history", slug)
    assert doc.code == 0, doc.stderr
    entries: list[dict[str, object]] = doc.doc["result"]["transitions"]
    return entries


def _stalled_run(s: Scratch, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """A `run` stalled in its check of add-docs; the pids file its check writes to."""
    pids, stall = tmp_path / "pids", tmp_path / "stall"
    stall.write_text("")
    proc = spawn(s, "run", env={"PIDS": str(pids), "STALL": str(stall)})
    read_until(proc, "check stall")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(_pids(pids)) < 2:
        time.sleep(0.02)
    assert len(_pids(pids)) >= 2, f"the check did not start its grandchild: {_pids(pids)}"
    return proc, pids


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_sigterm_in_a_serial_check_requeues_without_a_follow_up(
    scratch: Scratch, tmp_path: Path
) -> None:
    """SIGTERM during a serial check: a logged requeue naming it, no block, no todo, order kept."""
    (scratch.bare / "mergegate.toml").write_text(STALL_CHECK)
    for slug in ("add-docs", "other"):
        assert scratch("submit", slug).code == 0
    proc, _ = _stalled_run(scratch, tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, _, err = watch(proc).finish(30)
    assert proc.returncode == 0, err
    assert states(scratch) == {"add-docs": "pending", "other": "pending"}
    last = _history(scratch, "add-docs")[-1]
    assert last["event"] == "requeue", last
    assert "SIGTERM" in str(last["reason"]), last
    assert not list(scratch.todos.rglob("*.md")), list(scratch.todos.rglob("*"))
    (tmp_path / "stall").unlink()
    done = scratch("--json", "run", "--once")
    assert done.code == 0, done.stderr
    assert states(scratch) == {"add-docs": "integrated", "other": "integrated"}


def _integration_order(s: Scratch) -> list[str]:
    """The slugs main integrated, oldest first, from its merge subjects."""
    log = subprocess.run(
        ["git", "-C", str(s.bare), "log", "--reverse", "--first-parent", "--format=%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.findall(r"^mergegate: integrate (\S+)", log, re.MULTILINE)


def test_a_requeued_candidate_keeps_its_place(scratch: Scratch, tmp_path: Path) -> None:
    """A candidate requeued by a stop is integrated before those queued after it."""
    (scratch.bare / "mergegate.toml").write_text(STALL_CHECK)
    for slug in ("add-docs", "other"):
        assert scratch("submit", slug).code == 0
    proc, _ = _stalled_run(scratch, tmp_path)
    proc.send_signal(signal.SIGTERM)
    watch(proc).finish(30)
    (tmp_path / "stall").unlink()
    assert scratch("run", "--once").code == 0
    assert _integration_order(scratch) == ["add-docs", "other"]


def test_kill_9_of_run_takes_its_check_group_with_it(scratch: Scratch, tmp_path: Path) -> None:
    """After kill -9 of run, no process its check started survives, and recovery requeues."""
    (scratch.bare / "mergegate.toml").write_text("lease_ttl = 600\n" + STALL_CHECK)
    assert scratch("submit", "add-docs").code == 0
    proc, pids = _stalled_run(scratch, tmp_path)
    proc.kill()
    watch(proc).finish(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in _pids(pids)):
        time.sleep(0.05)
    assert not [p for p in _pids(pids) if _alive(p)], f"survivors of {_pids(pids)}"
    recovered = scratch("--json", "recover")
    assert recovered.code == 0, recovered.stderr
    assert states(scratch)["add-docs"] == "pending"
    last = _history(scratch, "add-docs")[-1]
    assert last["event"] == "requeue", last
    assert "process is gone" in str(last["reason"]), last
    assert not list(scratch.todos.rglob("*.md"))


def test_a_candidate_that_kills_its_integrator_thrice_is_blocked_with_each(
    scratch: Scratch, tmp_path: Path
) -> None:
    """Three crashes in a row on one candidate: requeued twice, then blocked with all three."""
    (scratch.bare / "mergegate.toml").write_text("lease_ttl = 600\n" + STALL_CHECK)
    assert scratch("submit", "add-docs").code == 0
    seen = []
    for _ in range(3):
        proc, _pids_file = _stalled_run(scratch, tmp_path)
        proc.kill()
        watch(proc).finish(10)
        assert scratch("recover").code == 0
        seen.append(states(scratch)["add-docs"])
    assert seen == ["pending", "pending", "blocked"]
    blocked = scratch("--json", "show", "add-docs").doc["result"]["blocked"]
    assert blocked["reason"] == "apply_interrupted"
    shown = scratch("show", "add-docs").stdout
    assert "3 applies in a row were interrupted" in shown, shown
    todo = "".join(p.read_text() for p in scratch.todos.rglob("*.md"))
    assert todo.count("process is gone") == 3, todo


def _team_clone(s: Scratch, *slugs: str) -> Path:
    """A clone with main checked out (clean), its store initialized and ``slugs`` submitted."""
    team = s.root / "team"
    subprocess.run(["git", "clone", "-q", str(s.bare), str(team)], check=True, env=_env())
    for slug in slugs:
        subprocess.run(
            ["git", "-C", str(team), "branch", "-q", slug, f"origin/{slug}"],
            check=True,
            env=_env(),
        )
    for args in (("init",), *(("submit", slug) for slug in slugs)):
        done = subprocess.run(
            [sys.executable, "-m", "mergegate.cli", "--repo", str(team), *args],
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr
    return team


def _spawn_in(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(repo), *args],
        cwd=repo,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_held_index_lock_makes_run_wait_not_block(scratch: Scratch) -> None:
    """A person's index.lock in the checked-out clone: run says it waits, then integrates."""
    team = _team_clone(scratch, "add-docs")
    lock = team / ".git" / "index.lock"
    lock.write_text("")
    proc = _spawn_in(team, "run", "--once")
    try:
        seen = read_until(proc, "waiting:", timeout=30)
        assert "index.lock" in seen[-1], seen
        lock.unlink()
        _, out, err = watch(proc).finish(60)
    finally:
        if proc.returncode is None:
            watch(proc).kill()
    assert proc.returncode == 0, out + err
    listing = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(team), "--json", "list", "--all"],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    )
    [only] = json.loads(listing.stdout)["result"]["candidates"]
    assert only["state"] == "integrated", only
    assert not list((team / "todos").rglob("*.md"))


def test_a_held_main_lock_makes_run_wait_with_a_message(scratch: Scratch) -> None:
    """git's main.lock held by another process: run says what it waits for, then integrates."""
    assert scratch("submit", "add-docs").code == 0
    lock = scratch.bare / "refs" / "heads" / "main.lock"
    lock.write_text("")
    proc = spawn(scratch, "run", "--once")
    try:
        seen = read_until(proc, "waiting:", timeout=60)
        assert "main.lock" in seen[-1], seen
        lock.unlink()
        _, out, err = watch(proc).finish(60)
    finally:
        if proc.returncode is None:
            watch(proc).kill()
    assert proc.returncode == 0, out + err
    assert states(scratch)["add-docs"] == "integrated"


def test_run_names_itself_and_stamps_its_lines(scratch: Scratch) -> None:
    """run's moves are recorded as run:HOST:PID, and each progress line starts with UTC time."""
    assert scratch("submit", "add-docs").code == 0
    env = {k: v for k, v in _env().items() if k != "MERGEGATE_ACTOR"}
    done = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare), "run", "--once"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    actors = {str(e["actor"]) for e in _history(scratch, "add-docs")[1:]}
    [actor] = actors
    assert re.fullmatch(rf"run:{re.escape(socket.gethostname())}:\d+", actor), actor
    lines = [line for line in done.stdout.splitlines() if "add-docs" in line]
    assert lines, done.stdout
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", line) for line in lines), lines
    assert "per busy minute" in done.stdout


def test_run_once_on_an_unborn_main_says_nothing_to_apply(make_scratch: MakeScratch) -> None:
    """run --once where main does not resolve yet: exit 0, "nothing to apply", like apply."""
    s = make_scratch("fresh")
    subprocess.run(["git", "-C", str(s.bare), "update-ref", "-d", "refs/heads/main"], check=True)
    assert s("init").code == 0
    applied = s("apply")
    assert applied.code == 0, applied
    assert "nothing to apply" in applied.stdout, applied
    ran = s("run", "--once")
    assert ran.code == 0, ran.stderr
    assert "nothing to apply" in ran.stdout, ran.stdout


def _fix_new_greeting(s: Scratch) -> None:
    """Merge main into new-greeting, resolving greeting.txt, and push it: the tutorial's fix."""

    def g(*args: str) -> None:
        subprocess.run(["git", "-C", str(s.work), *args], check=True, env=_env())

    g("fetch", "-q", "origin")
    g("checkout", "-q", "new-greeting")
    subprocess.run(
        ["git", "-C", str(s.work), "merge", "-q", "origin/main"], env=_env(), check=False
    )
    (s.work / "greeting.txt").write_text("Hello, mergegate!\n")
    g("add", "greeting.txt")
    g("commit", "-q", "--no-edit")
    g("push", "-q", "origin", "new-greeting")


def _next_lines(s: Scratch, tmp_path: Path) -> Path:
    shown = s("show", "new-greeting")
    assert shown.code == 0, shown.stderr
    lines = [
        line[len("NEXT: ") :] for line in shown.stdout.splitlines() if line.startswith("NEXT: ")
    ]
    assert lines[-1] == "mergegate apply new-greeting", lines
    script = tmp_path / "next.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def _bash_e(s: Scratch, script: Path) -> subprocess.CompletedProcess[str]:
    env = _env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-e", str(script)],
        cwd=s.bare,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _wait_for_state(s: Scratch, slug: str, state: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    seen = states(s).get(slug)
    while seen != state and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = states(s).get(slug)
    assert seen == state, f"{slug} stayed {seen}, not {state}"


def test_the_next_lines_run_verbatim_without_run(blocked: Scratch, tmp_path: Path) -> None:
    """bash -e over the printed NEXT lines integrates the candidate with no integrator up."""
    _fix_new_greeting(blocked)
    done = _bash_e(blocked, _next_lines(blocked, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert states(blocked)["new-greeting"] == "integrated"


def test_the_next_lines_run_verbatim_beside_run(blocked: Scratch, tmp_path: Path) -> None:
    """bash -e over the printed NEXT lines succeeds while run is up; run integrates it."""
    _fix_new_greeting(blocked)
    script = _next_lines(blocked, tmp_path)
    proc = spawn(blocked, "run", "--poll", "0.05")
    try:
        read_until(proc, "queue empty")
        done = _bash_e(blocked, script)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "the integrator" in done.stdout, done.stdout
        _wait_for_state(blocked, "new-greeting", "integrated")
    finally:
        proc.send_signal(signal.SIGTERM)
        watch(proc).finish(30)
    assert proc.returncode == 0
    verify = blocked("verify")
    assert verify.code == 0, verify.stdout + verify.stderr


def test_apply_beside_run_answers_with_the_queue_position(scratch: Scratch, tmp_path: Path) -> None:
    """With run up and busy on add-docs, `apply other` says its position and exits 0."""
    (scratch.bare / "mergegate.toml").write_text(STALL_CHECK)
    assert scratch("submit", "add-docs").code == 0
    proc, _ = _stalled_run(scratch, tmp_path)
    try:
        assert scratch("submit", "other").code == 0
        answer = scratch("apply", "other")
        assert answer.code == 0, answer.stderr
        assert "other: queued at position 1; the integrator takes it" in answer.stdout
        busy = scratch("apply", "add-docs")
        assert busy.code == 0, busy.stderr
        assert "the integrator is applying it now" in busy.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        watch(proc).finish(30)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('todos = ".git"\n', "todos"),
        ('todos = "refs"\n', "todos"),
        ('roadmap = "config"\n', "roadmap"),
        ('main_branch = "HEAD"\n', "main_branch"),
        ('main_branch = "refs/heads/x"\n', "main_branch"),
        ('lease_ttl = 2\n[[notify]]\nargv = ["true"]\ntimeout = 6\n', "notify"),
    ],
)
def test_a_configuration_that_hands_the_gate_away_is_refused(
    scratch: Scratch, text: str, key: str
) -> None:
    """Git-dir follow-up paths, a non-plain main_branch, a long notify: exit 2 naming the key."""
    (scratch.bare / "mergegate.toml").write_text(text)
    config_before = (scratch.bare / "config").read_bytes()
    done = scratch("list")
    assert done.code == 2, done
    assert key in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (scratch.bare / "config").read_bytes() == config_before
    assert not (scratch.bare / "config.lock").exists()


def test_a_clone_refuses_todos_inside_dot_git(scratch: Scratch) -> None:
    """In a clone with a work tree, todos = ".git/x" is refused like any path in git's files."""
    team = _team_clone(scratch)
    (team / "mergegate.toml").write_text('roadmap = ".git/config"\n')
    done = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(team), "list"],
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "roadmap" in done.stderr
    assert not (team / ".git" / "config.lock").exists()


def test_submit_of_a_blocked_slug_at_a_new_tip_names_the_commands(blocked: Scratch) -> None:
    """submit of a blocked slug at a new tip says which commands help, word for word."""
    _fix_new_greeting(blocked)
    before = blocked.snapshot()
    done = blocked("submit", "new-greeting")
    assert done.code == 2, done
    assert "`mergegate resume new-greeting`" in done.stderr, done.stderr
    assert "`mergegate remediate new-greeting`" in done.stderr, done.stderr
    assert '`mergegate withdraw new-greeting --why "superseded"`' in done.stderr, done.stderr
    assert blocked.snapshot() == before


def test_an_idempotency_key_names_one_request_forever(scratch: Scratch) -> None:
    """A key retried after a withdraw returns the first answer; on another slug it is refused."""
    first = scratch("--json", "submit", "add-docs", "--idempotency-key", "k1")
    assert first.code == 0, first.stderr
    assert scratch("withdraw", "add-docs", "--why", "changed my mind").code == 0
    again = scratch("--json", "submit", "add-docs", "--idempotency-key", "k1")
    assert again.code == 0, again.stderr
    assert again.doc["result"]["transition"] == first.doc["result"]["transition"]
    assert states(scratch) == {"add-docs": "withdrawn"}
    other = scratch("submit", "other", "--idempotency-key", "k1")
    assert other.code == 2, other
    assert "k1" in other.stderr
    assert states(scratch) == {"add-docs": "withdrawn"}


def test_a_free_chain_slot_takes_a_candidate_submitted_meanwhile(
    scratch: Scratch, tmp_path: Path
) -> None:
    """run --concurrency 3 busy on add-docs starts `other`, submitted later, at once."""
    (scratch.bare / "mergegate.toml").write_text(POLL_CHECK)
    pids, stall = tmp_path / "pids", tmp_path / "stall"
    stall.write_text("")
    assert scratch("submit", "add-docs").code == 0
    proc = spawn(scratch, "run", "--concurrency", "3", env={"PIDS": str(pids), "STALL": str(stall)})
    try:
        read_until(proc, "add-docs")
        assert scratch("submit", "other").code == 0
        seen = read_until(proc, "other", timeout=20)
        assert "applying" in seen[-1], seen
        assert states(scratch)["add-docs"] == "applying"
        stall.unlink()
        _wait_for_state(scratch, "other", "integrated")
    finally:
        proc.send_signal(signal.SIGTERM)
        watch(proc).finish(30)
    assert states(scratch) == {"add-docs": "integrated", "other": "integrated"}


def test_a_person_editing_the_checked_out_main_makes_run_wait_not_block(scratch: Scratch) -> None:
    """A person's uncommitted edit in the clone's checked-out main: run waits, never blocks."""
    team = _team_clone(scratch)
    subprocess.run(["git", "-C", str(team), "branch", "-q", "other", "origin/other"], check=True)
    proc = _spawn_in(team, "run", "--poll", "0.1")
    try:
        read_until(proc, "queue empty", timeout=30)
        (team / "README.md").write_text("# greeter, being edited\n")
        done = subprocess.run(
            [sys.executable, "-m", "mergegate.cli", "--repo", str(team), "submit", "other"],
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
        )
        assert done.returncode == 0, done.stderr
        seen = read_until(proc, "waiting:", timeout=30)
        assert "checked out" in seen[-1], seen
        # The person is done: the edit is undone, and the candidate goes through.
        subprocess.run(["git", "-C", str(team), "checkout", "--", "README.md"], check=True)
        read_until(proc, "integrated", timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, out, err = watch(proc).finish(60)
    assert proc.returncode == 0, out + err
    assert not list((team / "todos").rglob("*.md")), "an innocent candidate got a follow-up"
    assert (team / "other.txt").read_text() == "other\n"


def test_a_configuration_broken_under_run_is_waited_for_not_fatal(scratch: Scratch) -> None:
    """A half-done edit of mergegate.toml under a running run: it waits, then goes on."""
    config = scratch.bare / "mergegate.toml"
    config.write_text("lease_ttl = 30\n")
    proc = spawn(scratch, "run", "--poll", "0.1")
    try:
        read_until(proc, "queue empty")
        config.write_text("lease_ttl = 30\nnot_a_key = 1\n")  # a person saved mid-edit
        seen = read_until(proc, "waiting:", timeout=30)
        assert "not_a_key" in seen[-1], seen
        assert "changed under run" in seen[-1], seen
        assert proc.poll() is None, "run ended on a configuration edited under it"
        config.write_text("lease_ttl = 30\n")
        assert scratch("submit", "add-docs").code == 0
        read_until(proc, "integrated", timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, out, err = watch(proc).finish(60)
    assert proc.returncode == 0, out + err
    assert states(scratch)["add-docs"] == "integrated"


def test_run_started_on_a_checked_out_main_being_edited_waits(scratch: Scratch) -> None:
    """run (re)started while a person edits the checked-out main: it waits, then integrates."""
    team = _team_clone(scratch, "add-docs")
    (team / "README.md").write_text("# greeter, being edited\n")
    proc = _spawn_in(team, "run", "--poll", "0.1")
    try:
        seen = read_until(proc, "waiting:", timeout=30)
        assert "checked out" in seen[-1], seen
        assert proc.poll() is None, "run ended on a person's edit"
        subprocess.run(["git", "-C", str(team), "checkout", "--", "README.md"], check=True)
        read_until(proc, "integrated", timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, out, err = watch(proc).finish(60)
    assert proc.returncode == 0, out + err
    assert not list((team / "todos").rglob("*.md")), "an innocent candidate got a follow-up"


def test_apply_beside_a_held_index_lock_gives_the_candidate_back_uncounted(
    scratch: Scratch,
) -> None:
    """apply meets a person's index.lock: the candidate is requeued at once, never blocked."""
    team = _team_clone(scratch, "add-docs")
    lock = team / ".git" / "index.lock"
    lock.write_text("")

    def mg(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mergegate.cli", "--repo", str(team), *args],
            capture_output=True,
            text=True,
            env=_env(),
            check=False,
        )

    # What a person does, three times over: apply, then recover as the old message said.
    for _ in range(3):
        done = mg("apply", "add-docs")
        assert done.returncode != 0, done.stdout
        assert "add-docs went back to the queue" in done.stderr, done.stderr
        assert "index.lock" in done.stderr, done.stderr
        assert mg("recover").returncode == 0
    shown = json.loads(mg("--json", "show", "add-docs").stdout)["result"]
    assert shown["candidate"]["state"] == "pending", shown
    lock.unlink()
    # The printed command, once the lock is gone: it integrates.
    again = mg("apply", "add-docs")
    assert again.returncode == 0, again.stderr
    assert "integrated" in again.stdout, again.stdout
    assert not list((team / "todos").rglob("*.md"))


@pytest.mark.slow
def test_ctrl_c_to_runs_group_mid_read_tree_finishes_the_move_cleanly(scratch: Scratch) -> None:
    """SIGINT to run's whole group while read-tree writes main's work tree: the move completes."""
    files = {f"big/{i // 500}/{i}.txt": f"file {i}\n" for i in range(20_000)}
    scratch.commit("big", "main", "a large merge", files)
    team = _team_clone(scratch, "big")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(team), "run", "--once"],
        cwd=team,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    try:
        seen: list[str] = []
        deadline = time.monotonic() + 120
        while not seen and time.monotonic() < deadline and proc.poll() is None:
            found = subprocess.run(
                ["pgrep", "-P", str(proc.pid), "-f", "read-tree"],
                capture_output=True,
                text=True,
                check=False,
            )
            seen = [pid for pid in found.stdout.split() if pid.isdigit()]
        assert seen, "run never started read-tree (it finished or stalled first)"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        _, out, err = watch(proc).finish(120)
    finally:
        if proc.returncode is None:
            watch(proc).kill()
    assert re.search(r"^\S+ big \w+: integrated", out, re.M), out + err
    status = subprocess.run(
        ["git", "-C", str(team), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == "", status.stdout[:500]
    assert not (team / ".git" / "index.lock").exists()
    main = subprocess.run(
        ["git", "-C", str(team), "rev-parse", "HEAD", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert main[0] == main[1], main
