"""Every lifecycle command as a real subprocess on a real repository and SQLite store."""

from __future__ import annotations

import re

import pytest

from mergegate.persistence.migrations import POSTGRES_MIGRATIONS

from .conftest import MakeScratch, Scratch, git


def test_version_prints_the_version(scratch: Scratch) -> None:
    """--version prints the program name and a version, exit 0."""
    r = scratch("--version")
    assert r.code == 0
    assert re.fullmatch(r"mergegate \S+\n", r.stdout)


def test_init_is_idempotent_and_uses_the_git_common_dir(make_scratch: MakeScratch) -> None:
    """init creates <git-common-dir>/mergegate/mergegate.sqlite3; a second init changes nothing."""
    s = make_scratch()
    first = s("--json", "init")
    assert first.code == 0
    assert first.doc["result"]["db"] == str(s.db)
    before = s.snapshot()
    again = s("init")
    assert again.code == 0
    assert "store ready" in again.stdout
    assert s.snapshot() == before


def test_commands_before_init_say_so(make_scratch: MakeScratch) -> None:
    """A command before init exits 2 with one line naming `mergegate init`, creating no store."""
    s = make_scratch()
    r = s("list")
    assert r.code == 2
    assert r.stderr.count("\n") == 1
    assert "mergegate init" in r.stderr
    assert not s.db.exists()


def test_submit_twice_is_a_noop(scratch: Scratch) -> None:
    """Submitting the same identity again exits 0 and reports changed=false."""
    sha = scratch.shas["add-docs"]
    assert scratch("--json", "submit", "add-docs", "--sha", sha).doc["result"]["changed"] is True
    again = scratch("--json", "submit", "add-docs", "--sha", sha)
    assert again.code == 0
    assert again.doc["result"]["changed"] is False
    assert again.doc["result"]["candidate"]["seq"] == 1


def test_submit_branch_defaults_to_slug(scratch: Scratch) -> None:
    """Without --branch the branch is the slug; with it, the given branch."""
    a = scratch("--json", "submit", "add-docs", "--sha", scratch.shas["add-docs"]).doc
    b = scratch("--json", "submit", "x", "--sha", scratch.shas["other"], "--branch", "other").doc
    assert a["result"]["candidate"]["branch"] == "add-docs"
    assert b["result"]["candidate"]["branch"] == "other"


def test_submit_another_sha_under_a_held_slug_is_invalid(scratch: Scratch) -> None:
    """A second identity for an unintegrated slug exits 2."""
    assert scratch("submit", "add-docs", "--sha", scratch.shas["add-docs"]).code == 0
    r = scratch("submit", "add-docs", "--branch", "other", "--sha", scratch.shas["other"])
    assert r.code == 2
    assert "already held" in r.stderr


def test_apply_integrates_and_moves_main(scratch: Scratch) -> None:
    """apply SLUG integrates a clean candidate: exit 0, main now contains it."""
    before = scratch.main()
    scratch("submit", "add-docs", "--sha", scratch.shas["add-docs"])
    r = scratch("--json", "apply", "add-docs")
    assert r.code == 0
    assert r.doc["result"]["candidate"]["state"] == "integrated"
    main = scratch.main()
    assert main != before
    assert r.doc["result"]["transition"]["reason"] == f"main={main}"
    git(scratch.bare, "merge-base", "--is-ancestor", scratch.shas["add-docs"], main)


def test_apply_blocked_exits_3_with_guidance_and_follow_up(blocked: Scratch) -> None:
    """A conflicting apply exits 3, prints the guidance, and creates the todo and roadmap entry."""
    r = blocked("show", "new-greeting")
    assert r.code == 0
    assert "INTEGRATION_BLOCKED\n" in r.stdout
    assert "NEXT: mergegate resume new-greeting" in r.stdout
    assert "conflicts:  greeting.txt" in r.stdout
    follow_up = f"new-greeting-integration-blocked-{blocked.shas['new-greeting'][:7]}"
    assert (blocked.todos / follow_up / "input.md").is_file()
    assert follow_up in (blocked.todos / "roadmap.yaml").read_text()


def test_apply_with_nothing_queued(scratch: Scratch) -> None:
    """apply with an empty queue exits 0 and says so; JSON result is null."""
    assert scratch("apply").stdout == "nothing to apply: no pending or retry candidate\n"
    r = scratch("--json", "apply")
    assert r.code == 0
    assert r.doc["result"] is None


def test_external_apply_start_block_and_replay(scratch: Scratch) -> None:
    """start, then block from applying; block again from blocked is a replay (2 occurrences)."""
    scratch("submit", "new-greeting", "--sha", scratch.shas["new-greeting"])
    assert scratch("--json", "start", "new-greeting").doc["result"]["candidate"]["state"] == (
        "applying"
    )
    args = ("block", "new-greeting", "--reason", "merge_conflict", "--conflict-file", "a.txt")
    first = scratch("--json", *args)
    assert first.code == 0
    assert first.doc["result"]["candidate"]["state"] == "blocked"
    again = scratch("--json", *args, "--detail", "seen again")
    assert again.code == 0
    assert again.doc["result"]["transition"]["dest"] == "blocked"
    assert again.doc["result"]["blocked"]["occurrences"] == 2


def test_block_reads_evidence_from_stdin(scratch: Scratch) -> None:
    """--evidence-file - reads the evidence JSON from stdin; show prints it."""
    scratch("submit", "other", "--sha", scratch.shas["other"])
    scratch("start", "other")
    evidence = '{"checks": [{"name": "unit", "exit_code": 1, "output_tail": "1 failed"}]}'
    r = scratch(
        "block", "other", "--reason", "checks_failed", "--evidence-file", "-", stdin=evidence
    )
    assert r.code == 0, r.stderr
    shown = scratch("show", "other").stdout
    assert "check:      unit: exit 1\n              | 1 failed\n" in shown


def test_block_with_bad_evidence_writes_nothing(scratch: Scratch) -> None:
    """Evidence that does not match its reason exits 2 and leaves the store unchanged."""
    scratch("submit", "other", "--sha", scratch.shas["other"])
    scratch("start", "other")
    before = scratch.snapshot()
    r = scratch("block", "other", "--reason", "merge_conflict")
    assert r.code == 2
    assert "conflicted path" in r.stderr
    assert scratch.snapshot() == before


def test_integrate_accepts_main_that_contains_the_candidate(scratch: Scratch) -> None:
    """integrate --main-sha succeeds when main points at SHA and SHA contains the candidate."""
    sha = scratch.shas["other"]
    scratch("submit", "other", "--sha", sha)
    scratch("start", "other")
    git(scratch.bare, "update-ref", "refs/heads/main", sha)
    r = scratch("--json", "integrate", "other", "--main-sha", sha[:10])
    assert r.code == 0, r.stderr
    assert r.doc["result"]["candidate"]["state"] == "integrated"
    assert r.doc["result"]["transition"]["reason"] == f"main={sha}"


def test_integrate_refused_when_main_points_elsewhere(scratch: Scratch) -> None:
    """integrate with a sha main does not point at exits 2 and writes nothing."""
    sha = scratch.shas["other"]
    scratch("submit", "other", "--sha", sha)
    scratch("start", "other")
    before = scratch.snapshot()
    r = scratch("integrate", "other", "--main-sha", sha)
    assert r.code == 2
    assert "points at" in r.stderr
    assert scratch.snapshot() == before


def test_integrate_refused_when_sha_lacks_the_candidate(scratch: Scratch) -> None:
    """integrate with main's current sha, which lacks the candidate, exits 2."""
    scratch("submit", "other", "--sha", scratch.shas["other"])
    scratch("start", "other")
    r = scratch("integrate", "other", "--main-sha", scratch.main())
    assert r.code == 2
    assert "does not contain" in r.stderr


def test_illegal_move_exits_4(scratch: Scratch) -> None:
    """remediate on a pending candidate exits 4 naming the allowed events."""
    scratch("submit", "other", "--sha", scratch.shas["other"])
    r = scratch("remediate", "other")
    assert r.code == 4
    assert "allowed events: start_apply" in r.stderr


def test_stale_expected_seq_exits_4(blocked: Scratch) -> None:
    """A move with an --expected-seq another writer already passed exits 4 and writes nothing."""
    seq = blocked("--json", "show", "new-greeting").doc["result"]["candidate"]["seq"]
    before = blocked.snapshot()
    stale = blocked("remediate", "new-greeting", "--expected-seq", str(seq - 1))
    assert stale.code == 4
    assert "moved by another writer" in stale.stderr
    assert blocked.snapshot() == before
    assert blocked("remediate", "new-greeting", "--expected-seq", str(seq)).code == 0


def test_lease_held_exits_4(scratch: Scratch) -> None:
    """start while another candidate holds the integration lease exits 4."""
    scratch("submit", "other", "--sha", scratch.shas["other"])
    scratch("submit", "add-docs", "--sha", scratch.shas["add-docs"])
    assert scratch("start", "other").code == 0
    r = scratch("start", "add-docs")
    assert r.code == 4
    assert "lease" in r.stderr


def test_resume_refused_until_follow_up_is_done(blocked: Scratch) -> None:
    """resume exits 4 while state.yaml says open, and moves to retry once it says done."""
    assert blocked("remediate", "new-greeting").code == 0
    refused = blocked("resume", "new-greeting")
    assert refused.code == 4
    assert "not resolved" in refused.stderr
    assert blocked("followups", "done", "new-greeting").code == 0
    fixed = blocked.commit("new-greeting", "main", "Fix", {"greeting.txt": "Hello!\n"})
    r = blocked("--json", "resume", "new-greeting", "--sha", fixed)
    assert r.code == 0
    assert r.doc["result"]["candidate"]["state"] == "retry"
    assert r.doc["result"]["candidate"]["sha"] == fixed


def test_resume_force_needs_why(blocked: Scratch) -> None:
    """--force without --why exits 2; with it, the resume is logged with the reason."""
    blocked("remediate", "new-greeting")
    assert blocked("resume", "new-greeting", "--force").code == 2
    assert blocked("resume", "new-greeting", "--why", "x").code == 2
    r = blocked("--json", "resume", "new-greeting", "--force", "--why", "fixed upstream")
    assert r.code == 0
    assert r.doc["result"]["transition"]["reason"] == "forced: fixed upstream"


def test_remediate_resume_apply_integrates(blocked: Scratch) -> None:
    """After a fix merged with main and a forced resume, apply integrates the new sha."""
    blocked("remediate", "new-greeting")
    git(blocked.work, "checkout", "-q", "new-greeting")
    git(blocked.work, "fetch", "-q", "origin")
    git(blocked.work, "merge", "-q", "-X", "theirs", "origin/main")
    git(blocked.work, "push", "-q", "origin", "new-greeting")
    fixed = git(blocked.work, "rev-parse", "HEAD")
    blocked("resume", "new-greeting", "--sha", fixed, "--force", "--why", "test")
    r = blocked("--json", "apply")
    assert r.code == 0
    assert r.doc["result"]["candidate"]["state"] == "integrated"
    assert blocked("verify").code == 0
    shown = blocked("--json", "show", "new-greeting").doc["result"]
    assert [(b["status"], b["sha"]) for b in shown["blocked_history"]] == [
        ("resumed", blocked.shas["new-greeting"])
    ]
    assert (
        "earlier follow-ups:\n  new-greeting-integration-blocked-"
        in blocked("show", "new-greeting").stdout
    )


@pytest.mark.postgres
def test_blocked_flow_on_postgres(make_scratch: MakeScratch, pg_url: str) -> None:
    """With --db postgresql://..., init, apply, block, show and verify work the same."""
    s = make_scratch()
    init = s("--db", pg_url, "--json", "init")
    assert init.code == 0, init.stderr
    assert init.doc["result"]["backend"] == "postgresql"
    assert init.doc["result"]["schema_versions"] == [m.version for m in POSTGRES_MIGRATIONS]
    with_password = pg_url.replace("://postgres@", "://postgres:hunter2@", 1)
    if with_password != pg_url:
        shown = s("--db", with_password, "init")
        assert shown.code == 0, shown.stderr
        assert "hunter2" not in shown.stdout
        assert "postgres:***@" in shown.stdout
    for slug in ("add-docs", "new-greeting"):
        assert s("--db", pg_url, "submit", slug, "--sha", s.shas[slug]).code == 0
    assert s("--db", pg_url, "apply").code == 0
    blocked = s("--db", pg_url, "apply")
    assert blocked.code == 3
    assert "INTEGRATION_BLOCKED\n" in blocked.stdout
    assert "conflicts:  greeting.txt" in s("--db", pg_url, "show", "new-greeting").stdout
    assert s("--db", pg_url, "verify").code == 0
    assert not s.db.exists()
