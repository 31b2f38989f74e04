"""[[notify]] as a user configures it: a blocked notice carries the fix, and withdraw,
supersede and requeue are events of their own."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from .conftest import Scratch, read_until, spawn, states, watch

# Each notification's stdin lands in a file of its own, whatever runs at once.
SCRIPT = """#!/bin/sh
f=$(mktemp "{out}/notice.XXXXXX")
cat > "$f"
"""

# A check that loops while the SLOW variable names an existing file (test_cli_run.py's).
SLOW_CHECK = """
[[checks]]
name = "slow-gate"
argv = 'while [ -n "$SLOW" ] && [ -e "$SLOW" ]; do sleep 0.05; done'
shell = true
"""


def _notifier(s: Scratch, tmp: Path, on: str | None, extra: str = "") -> Path:
    """Write mergegate.toml with one [[notify]] that saves its stdin; the folder it saves to."""
    out = tmp / "seen"
    out.mkdir()
    script = tmp / "notify.sh"
    script.write_text(SCRIPT.format(out=out), encoding="utf-8")
    script.chmod(0o755)
    on_line = "" if on is None else f"on = {on}\n"
    (s.bare / "mergegate.toml").write_text(
        f'{extra}\n[[notify]]\nargv = ["{script}"]\n{on_line}', encoding="utf-8"
    )
    return out


def _docs(out: Path) -> list[dict[str, Any]]:
    """Every notification received, oldest first."""
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in out.iterdir()]
    return sorted(docs, key=lambda d: d["at"])


def test_blocked_notice_carries_the_next_lines_the_conflict_and_the_evidence(
    scratch: Scratch, tmp_path: Path
) -> None:
    """A conflict's notice has apply's guidance verbatim, the conflicted path and input.md."""
    out = _notifier(scratch, tmp_path, '["blocked"]')
    assert scratch("submit", "add-docs").code == 0
    assert scratch("apply").code == 0
    assert scratch("submit", "new-greeting").code == 0
    r = scratch("apply")
    assert r.code == 3, r.stderr
    [doc] = _docs(out)
    assert doc["notify"] == "blocked"
    guidance = doc["guidance"]
    # What apply printed is what the notice carries: the NEXT lines, as printed.
    assert guidance["text"] in r.stdout
    printed = [ln.removeprefix("NEXT: ") for ln in r.stdout.splitlines() if ln.startswith("NEXT: ")]
    assert guidance["next_commands"] == printed
    assert printed
    assert doc["failure"]["reason"] == "merge_conflict"
    assert doc["failure"]["conflicted_paths"] == ["greeting.txt"]
    assert "conflicts:  greeting.txt" in doc["failure"]["lines"]
    evidence = doc["evidence"]
    fu = doc["blocked"]["follow_up_slug"]
    assert evidence["file"] == f"todos/{fu}/input.md"
    assert Path(evidence["path"]).is_file()
    assert evidence["show"] == "mergegate show new-greeting"
    assert evidence["occurrence"]["report"]["evidence"]["conflicted_paths"] == ["greeting.txt"]
    message = doc["message"]
    assert message.splitlines()[0].startswith("new-greeting (new-greeting@")
    assert "greeting.txt" in message
    assert all(f"NEXT: {cmd}" in message for cmd in printed)


def test_a_failing_check_is_named_with_its_output_tail(scratch: Scratch, tmp_path: Path) -> None:
    """A failed check's notice names the check, its exit code and the end of its output."""
    check = (
        '[[checks]]\nname = "unit"\n'
        "argv = 'echo collecting; echo \"FAILED test_greeting: 3 != 4\"; exit 1'\nshell = true\n"
    )
    out = _notifier(scratch, tmp_path, '["blocked"]', extra=check)
    assert scratch("submit", "other").code == 0
    r = scratch("apply")
    assert r.code == 3, r.stderr
    [doc] = _docs(out)
    failed = doc["failure"]["failed_check"]
    assert failed["name"] == "unit"
    assert failed["exit_code"] == 1
    assert "FAILED test_greeting: 3 != 4" in failed["output_tail"]
    assert doc["failure"]["reason"] == "checks_failed"
    assert "check:      unit: exit 1" in doc["message"]
    assert "FAILED test_greeting: 3 != 4" in doc["message"]


def test_supersede_and_withdraw_each_notify_with_what_changed(
    scratch: Scratch, tmp_path: Path
) -> None:
    """A force-push resubmitted names the old and new sha; a withdraw names who and why."""
    out = _notifier(scratch, tmp_path, '["superseded", "withdrawn"]')
    old = scratch.shas["other"]
    assert scratch("submit", "other").code == 0
    new = scratch.commit("other", "other", "Another file, again", {"other.txt": "again\n"})
    assert scratch("submit", "other").code == 0
    r = scratch("withdraw", "other", "--why", "replaced by #42")
    assert r.code == 0, r.stderr
    superseded, withdrawn = _docs(out)
    assert superseded["notify"] == "superseded"
    assert superseded["candidate"]["sha"] == new
    assert superseded["superseded_sha"] == old
    assert f"now at {new[:12]} (was {old[:12]})" in superseded["message"]
    assert withdrawn["notify"] == "withdrawn"
    assert withdrawn["candidate"]["state"] == "withdrawn"
    assert withdrawn["transition"]["reason"] == "replaced by #42"
    assert "replaced by #42" in withdrawn["message"]


def test_a_stopped_run_notifies_the_requeue_of_its_candidate(
    scratch: Scratch, tmp_path: Path
) -> None:
    """SIGTERM during a check requeues the candidate, and the notice says why."""
    out = _notifier(scratch, tmp_path, '["requeued"]', extra=SLOW_CHECK)
    assert scratch("submit", "add-docs").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    proc = spawn(scratch, "run", env={"SLOW": str(flag)})
    # Waited for: run's progress line saying the check is running (so a stop requeues).
    read_until(proc, "check slow-gate")
    proc.send_signal(signal.SIGTERM)
    code, _out, err = watch(proc).finish(timeout=30)
    flag.unlink()
    assert code == 0, err
    [doc] = _docs(out)
    assert doc["notify"] == "requeued"
    assert doc["candidate"]["slug"] == "add-docs"
    assert doc["candidate"]["state"] == "pending"
    assert "SIGTERM" in doc["transition"]["interrupted"]
    assert "SIGTERM" in doc["message"]


def test_without_on_a_withdraw_sends_nothing(scratch: Scratch, tmp_path: Path) -> None:
    """An entry without ``on`` keeps its old meaning: blocked and integrated only."""
    out = _notifier(scratch, tmp_path, None)
    assert scratch("submit", "other").code == 0
    assert scratch("withdraw", "other", "--why", "not needed").code == 0
    assert _docs(out) == []
    assert scratch("submit", "add-docs").code == 0
    assert scratch("apply").code == 0
    assert [d["notify"] for d in _docs(out)] == ["integrated"]


def test_a_failing_notify_of_a_withdraw_is_one_warning(scratch: Scratch, tmp_path: Path) -> None:
    """A notify command that exits 1 on withdraw: one warning line, the withdraw stands."""
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 1\n", encoding="utf-8")
    failing.chmod(0o755)
    (scratch.bare / "mergegate.toml").write_text(
        f'[[notify]]\nargv = ["{failing}"]\non = ["withdrawn"]\n', encoding="utf-8"
    )
    assert scratch("submit", "other").code == 0
    r = scratch("withdraw", "other", "--why", "not needed")
    assert r.code == 0, r.stderr
    assert r.stderr.count("fail.sh for other: exit code 1") == 1
    assert states(scratch)["other"] == "withdrawn"


def test_an_unknown_event_is_refused_in_one_line_naming_it(scratch: Scratch) -> None:
    """A misspelt event (``integrator-down``) is exit 2, one line naming it; nothing written."""
    (scratch.bare / "mergegate.toml").write_text(
        '[[notify]]\nargv = ["true"]\non = ["blocked", "integrator-down"]\n', encoding="utf-8"
    )
    before = scratch.snapshot()
    r = scratch("submit", "add-docs")
    assert r.code == 2
    assert r.stderr.count("\n") == 1
    assert "notify[0].on" in r.stderr
    assert "'integrator-down'" in r.stderr
    assert "integrator_down" in r.stderr
    assert scratch.snapshot() == before
