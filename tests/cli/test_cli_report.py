"""report, history --all --since and list's new columns, run as a stranger would: the CLI as
a subprocess, with its defaults, on the blocked fixture (add-docs integrated, new-greeting
blocked by a conflict)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from .conftest import Scratch, git


def test_report_is_the_overnight_digest(blocked: Scratch) -> None:
    """report (12h): integrated, time in queue, blocked by reason, who waits; text = --json."""
    assert blocked("submit", "other", "--sha", blocked.shas["other"]).code == 0
    assert blocked("withdraw", "other", "--why", "not tonight").code == 0
    doc = blocked("--json", "report").doc
    assert doc["command"] == "report"
    r = doc["result"]
    assert [i["slug"] for i in r["integrated"]] == ["add-docs"]
    assert r["integrated"][0]["time_in_queue_seconds"] >= 0
    assert r["time_in_queue_seconds"]["count"] == 1
    assert r["time_in_queue_seconds"]["p50"] == r["time_in_queue_seconds"]["p95"]
    assert r["blocked_by_reason"] == {"merge_conflict": 1}
    assert [b["slug"] for b in r["blocked"]] == ["new-greeting"]
    assert [(w["slug"], w["note"]) for w in r["withdrawn"]] == [("other", "not tonight")]
    assert r["requeued"] == []
    assert r["flaky"] == []
    assert [(w["slug"], w["state"]) for w in r["waiting"]] == [("new-greeting", "blocked")]
    assert r["waiting"][0]["on"].startswith("its follow-up: new-greeting-integration-blocked-")
    assert r["integrator"]["state"] == "idle"
    since = datetime.fromisoformat(r["since"].replace("Z", "+00:00"))
    now = datetime.fromisoformat(r["now"].replace("Z", "+00:00"))
    assert now - since == timedelta(hours=12)
    text = blocked("report").stdout
    assert "integrated:  1 (add-docs)" in text
    assert "blocked:     1 (merge_conflict 1)" in text
    assert "withdrawn:   1 (other)" in text
    assert "new-greeting (blocked) waits for its follow-up: new-greeting-" in text


def test_report_since_a_later_time_is_empty(blocked: Scratch) -> None:
    """A window after every move reports nothing happened; the queue now is still shown."""
    later = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = blocked("--json", "report", "--since", later).doc["result"]
    assert r["integrated"] == []
    assert r["blocked"] == []
    assert r["time_in_queue_seconds"] == {"p50": None, "p95": None, "count": 0}
    assert [w["slug"] for w in r["waiting"]] == ["new-greeting"]
    assert "integrated:  0" in blocked("report", "--since", later).stdout


def test_report_refuses_a_bad_since_and_writes_nothing(blocked: Scratch) -> None:
    """--since yesterday-ish: exit 2, one line naming the expected forms, nothing written."""
    before = blocked.snapshot()
    out = blocked("report", "--since", "12 hours")
    assert out.code == 2
    assert out.stderr.count("\n") == 1
    assert "30m" in out.stderr
    assert blocked.snapshot() == before


def test_history_all_since_is_every_candidates_log(blocked: Scratch) -> None:
    """history --all --since 1h: both candidates' moves in the order made, each with its slug."""
    doc = blocked("--json", "history", "--all", "--since", "1h").doc["result"]
    rows = [(t["slug"], t["event"]) for t in doc["transitions"]]
    assert rows == [
        ("add-docs", "submit"),
        ("new-greeting", "submit"),
        ("add-docs", "start_apply"),
        ("add-docs", "integrate"),
        ("new-greeting", "start_apply"),
        ("new-greeting", "block"),
    ]
    times = [t["at"] for t in doc["transitions"]]
    assert times == sorted(times)
    text = blocked("history", "--all", "--since", "1h").stdout.splitlines()
    assert text[0].split()[:3] == ["CAND", "SLUG", "SEQ"]
    assert [line.split()[1] for line in text[1:]] == [slug for slug, _ in rows]
    later = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert blocked("history", "--all", "--since", later).stdout == "no transitions\n"


def test_history_needs_a_slug_or_all_not_both(blocked: Scratch) -> None:
    """history alone, or --all with a SLUG: exit 2 with one line; nothing written."""
    before = blocked.snapshot()
    for args in (("history",), ("history", "--all", "new-greeting")):
        out = blocked(*args)
        assert out.code == 2, args
        assert out.stderr.count("\n") == 1
    assert blocked.snapshot() == before


def test_list_shows_slot_elapsed_waiting_for_and_eta(blocked: Scratch) -> None:
    """list: the applying candidate in slot 1, the queue waiting on it, ETAs from add-docs."""
    assert blocked("submit", "other", "--sha", blocked.shas["other"]).code == 0
    rows = {r["slug"]: r for r in blocked("--json", "list").doc["result"]["candidates"]}
    head = rows["other"]
    assert (head["position"], head["slot"]) == (1, None)
    assert head["waiting_for"] == "an integrator: `mergegate run` takes the queue"
    assert head["eta"] is not None
    assert head["elapsed_seconds"] >= 0
    assert rows["new-greeting"]["eta"] is None
    assert blocked("start", "other").code == 0
    doc = blocked("--json", "list").doc["result"]
    rows = {r["slug"]: r for r in doc["candidates"]}
    assert (rows["other"]["slot"], rows["other"]["position"]) == (1, None)
    assert rows["other"]["waiting_for"] is None
    assert doc["typical_apply_seconds"] is not None
    text = blocked("list").stdout.splitlines()
    assert text[0].split() == [
        "POS", "SLOT", "SLUG", "BRANCH", "SHA", "STATE", "SEQ", "UPDATED", "(UTC)",
        "ELAPSED", "ETA", "WAITING", "FOR",
    ]  # fmt: skip
    applying = next(line for line in text if " applying " in line)
    assert applying.split()[:3] == ["-", "1", "other"]
    assert "~" in applying  # its ETA


@pytest.mark.slow
def test_report_names_each_slug_once_and_counts_the_rest(scratch: Scratch) -> None:
    """report: a slug superseded 3 times is `churn x3`; past ten integrated, `... and N more`."""
    git(scratch.work, "checkout", "-q", "-b", "churn", "main")
    churn = []
    for n in range(4):
        (scratch.work / "churn.txt").write_text(f"{n}\n")
        git(scratch.work, "add", "churn.txt")
        git(scratch.work, "commit", "-q", "-m", f"churn {n}")
        churn.append(git(scratch.work, "rev-parse", "HEAD"))
    slugs = [f"feat-{n:02}" for n in range(11)]
    for slug in slugs:
        git(scratch.work, "checkout", "-q", "-b", slug, "main")
        (scratch.work / f"{slug}.txt").write_text(f"{slug}\n")
        git(scratch.work, "add", f"{slug}.txt")
        git(scratch.work, "commit", "-q", "-m", slug)
    git(scratch.work, "push", "-q", "origin", "churn", *slugs)
    for sha in churn:
        assert scratch("submit", "churn", "--sha", sha).code == 0
    for slug in slugs:
        assert scratch("submit", slug).code == 0
    assert scratch("run", "--once").code == 0
    text = scratch("report").stdout
    assert "superseded:  3 (churn x3)\n" in text, text
    integrated = next(line for line in text.splitlines() if line.startswith("integrated:"))
    assert integrated.startswith("integrated:  12 ("), integrated
    assert integrated.endswith(", ... and 2 more)"), integrated
    assert integrated.count(",") == 10, integrated  # ten named, then the count
