"""resume takes the fix, follow-ups are resolved by a command, a new block resets the gate,
and show, history and blocked make every occurrence visible. Real repositories, real CLI."""

from __future__ import annotations

from .conftest import Scratch

_FU_PREFIX = "new-greeting-integration-blocked-"


def _fix(s: Scratch) -> str:
    """A commit on new-greeting that merges cleanly with main (it makes main's change too)."""
    return s.commit(
        "new-greeting", "main", "Take main's greeting", {"greeting.txt": "Hello, world!\n"}
    )


def _follow_up(s: Scratch) -> str:
    return str(s("show", "new-greeting", "--json").doc["result"]["blocked"]["follow_up_slug"])


def test_resume_refuses_the_blocked_sha_of_a_conflict(blocked: Scratch) -> None:
    """With no new commit on the branch, resume of a conflict is refused, one line, no write."""
    assert blocked("remediate", "new-greeting").code == 0
    assert blocked("followups", "done", "new-greeting").code == 0
    before = blocked.snapshot()
    done = blocked("resume", "new-greeting")
    assert done.code == 4
    assert done.stderr.count("\n") == 1
    assert "--same-sha" in done.stderr
    assert "commit the fix on new-greeting" in done.stderr
    assert blocked.snapshot() == before


def test_resume_takes_the_branch_tip(blocked: Scratch) -> None:
    """resume with no --sha retries the branch's current tip, as a full id."""
    fixed = _fix(blocked)
    assert blocked("remediate", "new-greeting").code == 0
    assert blocked("followups", "done", "new-greeting").code == 0
    done = blocked("--json", "resume", "new-greeting")
    assert done.code == 0, done.stderr
    assert done.doc["result"]["candidate"]["sha"] == fixed
    assert blocked("apply", "new-greeting").code == 0


def test_same_sha_with_a_note_is_logged(blocked: Scratch) -> None:
    """--same-sha retries the blocked sha without --force, and --note is the log entry's note."""
    sha = blocked.shas["new-greeting"]
    assert blocked("remediate", "new-greeting").code == 0
    assert blocked("followups", "done", "new-greeting").code == 0
    done = blocked("--json", "resume", "new-greeting", "--same-sha", "--note", "main reverted")
    assert done.code == 0, done.stderr
    assert done.doc["result"]["candidate"]["sha"] == sha
    assert done.doc["result"]["transition"]["reason"] == "main reverted"


def test_a_new_block_of_the_same_sha_resets_the_gate(blocked: Scratch) -> None:
    """A done that answered occurrence 1 does not let occurrence 2 through; done again does."""
    assert blocked("remediate", "new-greeting").code == 0
    assert blocked("followups", "done", "new-greeting").code == 0
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "retry as is").code == 0
    assert blocked("apply", "new-greeting").code == 3  # the same conflict, occurrence 2
    assert blocked("remediate", "new-greeting").code == 0
    refused = blocked("resume", "new-greeting", "--same-sha", "--note", "again")
    assert refused.code == 4
    assert "answers occurrence 1" in refused.stderr
    listed = blocked("--json", "followups", "list").doc["result"]["follow_ups"]
    assert [(f["occurrences"], f["resolved"]) for f in listed] == [(2, False)]
    assert blocked("followups", "done", _follow_up(blocked)).code == 0
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "again").code == 0


def test_followups_done_refuses_an_unknown_name(blocked: Scratch) -> None:
    """An unknown follow-up or candidate name is one error line, and nothing is written."""
    before = blocked.snapshot()
    done = blocked("followups", "done", "no-such-thing")
    assert done.code == 2
    assert done.stderr.count("\n") == 1
    assert "followups list" in done.stderr
    assert blocked.snapshot() == before


def test_folder_removed_rule(blocked: Scratch) -> None:
    """With resolved = folder-removed, done removes the folder, and a new block brings it back."""
    config = blocked.bare / "mergegate.toml"
    config.write_text('resolved = "folder-removed"\n', encoding="utf-8")
    fu = _follow_up(blocked)
    assert blocked("remediate", "new-greeting").code == 0
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "n").code == 4
    assert blocked("followups", "done", fu).code == 0
    assert not (blocked.todos / fu).exists()
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "n").code == 0
    assert blocked("apply", "new-greeting").code == 3
    assert (blocked.todos / fu / "state.yaml").is_file()
    assert blocked("remediate", "new-greeting").code == 0
    assert blocked("resume", "new-greeting", "--same-sha", "--note", "n").code == 4


def test_show_lists_every_occurrence(blocked: Scratch) -> None:
    """A replay with a new detail keeps the first occurrence visible in show and history."""
    replay = blocked(
        "block",
        "new-greeting",
        "--reason",
        "merge_conflict",
        "--detail",
        "second look",
        "--conflict-file",
        "greeting.txt",
    )
    assert replay.code == 0, replay.stderr
    shown = blocked("--json", "show", "new-greeting").doc["result"]
    details = [o["report"]["detail"] for o in shown["occurrences"]]
    assert len(details) == 2
    assert details[1] == "second look"
    assert details[0] != details[1]
    text = blocked("show", "new-greeting").stdout
    assert "occurrence 1 at" in text
    assert "occurrence 2 at" in text
    assert "second look" in text
    assert "conflicts:  greeting.txt" in text
    history = blocked("--json", "history", "new-greeting").doc["result"]["transitions"]
    numbers = [t["occurrence"]["number"] for t in history if t["occurrence"] is not None]
    assert numbers == [1, 2]


def test_blocked_lists_open_outcomes_unless_all(blocked: Scratch) -> None:
    """blocked shows what blocks now; --all adds the resumed outcomes."""
    assert blocked("remediate", "new-greeting").code == 0
    assert len(blocked("--json", "blocked").doc["result"]["blocked"]) == 1
    _fix(blocked)
    assert blocked("followups", "done", "new-greeting").code == 0
    assert blocked("resume", "new-greeting").code == 0
    assert blocked("--json", "blocked").doc["result"]["blocked"] == []
    everything = blocked("--json", "blocked", "--all").doc["result"]["blocked"]
    assert [b["status"] for b in everything] == ["resumed"]
    assert everything[0]["follow_up_slug"].startswith(_FU_PREFIX)
