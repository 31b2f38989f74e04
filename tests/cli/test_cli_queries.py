"""The read commands, recover, followups sync and verify, as real subprocesses."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time

from .conftest import MakeScratch, Scratch, _env, git


def test_list_filters_by_state(blocked: Scratch) -> None:
    """list --all shows every candidate; --state narrows it; an unknown state exits 2."""
    everything = blocked("--json", "list", "--all").doc["result"]["candidates"]
    assert [c["slug"] for c in everything] == ["new-greeting", "add-docs"]
    active = blocked("--json", "list").doc["result"]["candidates"]
    assert [c["slug"] for c in active] == ["new-greeting"]
    only = blocked("--json", "list", "--state", "blocked").doc["result"]["candidates"]
    assert [c["slug"] for c in only] == ["new-greeting"]
    assert blocked("list", "--state", "stuck").code == 2


def test_history_oldest_first_and_since(blocked: Scratch) -> None:
    """history lists every move oldest first; --since in the future lists none."""
    entries = blocked("--json", "history", "new-greeting").doc["result"]["transitions"]
    assert [t["event"] for t in entries] == ["submit", "start_apply", "block"]
    later = blocked("--json", "history", "new-greeting", "--since", "2999-01-01")
    assert later.doc["result"]["transitions"] == []
    recent = blocked("--json", "history", "new-greeting", "--since", "1h")
    assert len(recent.doc["result"]["transitions"]) == 3


def test_history_of_unknown_slug_exits_2(scratch: Scratch) -> None:
    """history of a slug nobody holds exits 2 and says how to find one."""
    r = scratch("history", "nobody")
    assert r.code == 2
    assert "mergegate list" in r.stderr


def test_bad_since_exits_2(blocked: Scratch) -> None:
    """A --since that is neither a duration nor a time exits 2 naming the accepted forms."""
    r = blocked("blocked", "--since", "yesterday")
    assert r.code == 2
    assert "duration" in r.stderr


def test_blocked_filters_by_reason(blocked: Scratch) -> None:
    """blocked lists the outcome; --reason checks_failed lists none."""
    rows = blocked("--json", "blocked").doc["result"]["blocked"]
    assert [(b["slug"], b["reason"], b["status"]) for b in rows] == [
        ("new-greeting", "merge_conflict", "open")
    ]
    assert blocked("--json", "blocked", "--reason", "checks_failed").doc["result"]["blocked"] == []
    assert "no blocked outcomes" in blocked("blocked", "--since", "2999-01-01").stdout


def test_recover_blocks_an_expired_apply(scratch: Scratch) -> None:
    """recover requeues an expired apply, and blocks it apply_interrupted the third time."""
    (scratch.bare / "mergegate.toml").write_text("lease_ttl = 1\n")
    scratch("submit", "other", "--sha", scratch.shas["other"])
    seen = []
    for _ in range(3):
        assert scratch("start", "other").code == 0
        time.sleep(1.1)
        r = scratch("--json", "recover")
        assert r.code == 0, r.stderr
        [outcome] = r.doc["result"]["recovered"]
        seen.append(outcome["candidate"]["state"])
    assert seen == ["pending", "pending", "blocked"]
    assert outcome["blocked"]["reason"] == "apply_interrupted"
    assert scratch("recover").stdout.startswith("no expired apply lease")


def test_followups_sync_creates_what_failed(blocked: Scratch) -> None:
    """A follow-up that could not be written is FAILED in guidance; sync creates it later."""
    blocked("remediate", "new-greeting")
    blocked.commit("new-greeting", "main", "Again", {"greeting.txt": "Hi.\n"})
    new_sha = blocked.shas["new-greeting"]
    blocked("resume", "new-greeting", "--sha", new_sha, "--force", "--why", "retry")
    roadmap = blocked.todos / "roadmap.yaml"
    roadmap.write_text("not: a list\n")
    r = blocked("apply")
    assert r.code == 3
    assert "INTEGRATION_BLOCKED_FOLLOWUP_FAILED" in r.stdout
    assert "NEXT: mergegate followups sync" in r.stdout
    failing = blocked("--json", "followups", "sync")
    assert failing.code == 1
    assert failing.doc["result"]["failed"][0]["follow_up_slug"].endswith(new_sha[:7])
    roadmap.write_text("")
    done = blocked("--json", "followups", "sync")
    assert done.code == 0
    assert done.doc["result"]["created"] == [f"new-greeting-integration-blocked-{new_sha[:7]}"]
    assert "nothing to sync" in blocked("followups", "sync").stdout


def test_verify_ok_and_violation(blocked: Scratch) -> None:
    """verify exits 0 on a sound store; after tampering it exits 1 and names the violation."""
    ok = blocked("verify")
    assert ok.code == 0
    assert ok.stdout.startswith("ok: 2 candidate(s)")
    with sqlite3.connect(blocked.db) as conn:
        conn.execute("UPDATE candidates SET state = 'retry' WHERE slug = 'new-greeting'")
    conn.close()
    bad = blocked("--json", "verify")
    assert bad.code == 1
    assert bad.doc["result"]["ok"] is False
    assert any("stored state retry" in v["problem"] for v in bad.doc["result"]["violations"])
    assert bad.stderr.count("\n") == 1


def test_diagram_formats_and_counts(blocked: Scratch) -> None:
    """diagram draws mermaid or dot from the table; --counts labels edges from the log."""
    mermaid = blocked("diagram")
    assert mermaid.stdout.startswith("stateDiagram-v2\n")
    assert "remediating --> retry: resume\n" in mermaid.stdout
    assert blocked("diagram", "--format", "dot").stdout.startswith("digraph mergegate {")
    counted = blocked("diagram", "--counts").stdout
    assert "[*] --> pending: submit (2)" in counted
    assert "applying --> blocked: block (1)" in counted
    assert "remediating --> retry: resume (0)" in counted
    assert blocked("diagram", "--format", "svg").code == 2


def test_recover_integrates_a_stranded_apply(scratch: Scratch) -> None:
    """recover integrates, not blocks, an expired apply whose sha main already contains."""
    (scratch.bare / "mergegate.toml").write_text("lease_ttl = 1\n")
    sha = scratch.shas["other"]
    scratch("submit", "other", "--sha", sha)
    scratch("start", "other")
    git(scratch.bare, "update-ref", "refs/heads/main", sha)
    time.sleep(1.1)
    [outcome] = scratch("--json", "recover").doc["result"]["recovered"]
    assert outcome["candidate"]["state"] == "integrated"
    assert outcome["transition"]["reason"] == f"main={sha}"


def test_log_file_and_log_stderr(scratch: Scratch) -> None:
    """Moves go to the log file as logfmt lines; --log-stderr copies them to stderr."""
    quiet = scratch("submit", "other", "--sha", scratch.shas["other"])
    assert quiet.stderr == ""
    assert "event=submit transition=submit slug=other" in scratch.log.read_text()
    loud = scratch("--log-stderr", "start", "other")
    assert loud.code == 0
    assert re.match(r"ts=\S+Z event=start_apply .*slug=other .*actor=tester", loud.stderr)


def test_db_from_environment_and_sqlite_url(make_scratch: MakeScratch) -> None:
    """MERGEGATE_DB and --db sqlite:///PATH choose the store instead of the default."""
    s = make_scratch()
    target = s.root / "elsewhere.sqlite3"
    assert s("--db", f"sqlite:///{target}", "init").code == 0
    assert s("--db", str(target), "submit", "other", "--sha", s.shas["other"]).code == 0
    assert not s.db.exists()
    env_listing = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(s.bare), "--json", "list"],
        env={**_env(), "MERGEGATE_DB": str(target)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert [c["slug"] for c in json.loads(env_listing.stdout)["result"]["candidates"]] == ["other"]
