"""supersede, withdraw and list as real subprocesses, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Scratch, git

# PostgreSQL runs every command as a subprocess against a fresh schema: CI (slow) covers it.
STORES = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]


@pytest.fixture(params=STORES)
def run(request: pytest.FixtureRequest, scratch: Scratch) -> Scratch:
    """The scratch repositories, with the store on SQLite or on a fresh PostgreSQL schema."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        # A repository that has never had a store: one store per repository.
        plain = request.getfixturevalue("make_scratch")("fresh")

        class OnPostgres(Scratch):
            def __call__(self, *args: str, stdin: str | None = None, cwd: Path | None = None):  # type: ignore[no-untyped-def]
                return Scratch.__call__(self, "--db", url, *args, stdin=stdin, cwd=cwd)

        moved = OnPostgres(plain.root, plain.shas)
        assert moved("init").code == 0
        return moved
    return scratch


def _force_push(s: Scratch, branch: str, files: dict[str, str]) -> str:
    """Rewrite ``branch`` to a new commit on main (a force-push) and return its sha."""
    git(s.work, "checkout", "-q", "-B", branch, s.shas["main"])
    return s.commit(branch, branch, f"rewrite {branch}", files)


def test_resubmit_supersedes_and_old_sha_never_integrates(run: Scratch) -> None:
    """A second submit at a force-pushed tip supersedes the pending sha; only the new one lands."""
    old = run.shas["other"]
    assert run("submit", "other").code == 0
    new = _force_push(run, "other", {"rewritten.txt": "new\n"})
    again = run("--json", "submit", "other")
    assert again.code == 0, again.stderr
    moved = again.doc["result"]
    assert moved["changed"] is True
    assert moved["candidate"]["sha"] == new
    assert moved["transition"]["event"] == "supersede"
    applied = run("--json", "apply")
    assert applied.code == 0, applied.stderr
    assert applied.doc["result"]["candidate"]["state"] == "integrated"
    main = run.main()
    assert git(run.bare, "merge-base", "--is-ancestor", new, main) == ""
    contains_old = git(run.bare, "branch", "--contains", old)
    assert "main" not in contains_old
    events = [t["event"] for t in run("--json", "history", "other").doc["result"]["transitions"]]
    assert events == ["submit", "supersede", "start_apply", "integrate"]
    assert run("verify").code == 0


def test_withdraw_pending_frees_the_slug(run: Scratch) -> None:
    """withdraw logs the reason; the slug takes a new submit; verify stays clean."""
    assert run("submit", "other").code == 0
    out = run("--json", "withdraw", "other", "--why", "typo")
    assert out.code == 0, out.stderr
    assert out.doc["result"]["candidate"]["state"] == "withdrawn"
    assert out.doc["result"]["transition"]["reason"] == "typo"
    again = run("--json", "submit", "other")
    assert again.code == 0
    assert again.doc["result"]["candidate"]["state"] == "pending"
    assert run("verify").code == 0


def test_withdraw_blocked_marks_the_follow_up(blocked: Scratch) -> None:
    """A blocked candidate withdrawn: its follow-up's state.yaml says status: withdrawn."""
    out = blocked("--json", "withdraw", "new-greeting", "--why", "superseded by a rewrite")
    assert out.code == 0, out.stderr
    assert "marked withdrawn" in out.stderr
    states = list(blocked.todos.glob("*/state.yaml"))
    assert len(states) == 1
    assert "status: withdrawn\n" in states[0].read_text()
    assert blocked("verify").code == 0


def test_withdraw_remediating_then_resubmit(blocked: Scratch) -> None:
    """remediating → withdrawn; a new submit of the slug queues it again as pending."""
    assert blocked("remediate", "new-greeting").code == 0
    assert blocked("withdraw", "new-greeting", "--why", "dropped").code == 0
    again = blocked("--json", "submit", "new-greeting")
    assert again.doc["result"]["candidate"]["state"] == "pending"


def test_withdraw_applying_is_refused_and_writes_nothing(run: Scratch) -> None:
    """A candidate holding the lease: exit 4, one line, nothing written."""
    assert run("submit", "other").code == 0
    assert run("start", "other").code == 0
    before = run.snapshot()
    out = run("withdraw", "other", "--why", "oops")
    assert out.code == 4
    assert out.stderr.count("\n") == 1
    assert run.snapshot() == before


def test_withdraw_without_a_reason_is_a_usage_error(run: Scratch) -> None:
    """--why is required and must say something: exit 2, one line, nothing written."""
    assert run("submit", "other").code == 0
    before = run.snapshot()
    for args in (["withdraw", "other"], ["withdraw", "other", "--why", " "]):
        out = run(*args)
        assert out.code == 2
        assert out.stderr.count("\n") == 1
    assert run.snapshot() == before


def test_list_shows_the_queue_in_order_with_positions(run: Scratch) -> None:
    """list: applying first, then pending in apply order numbered from 1; --all, --state."""
    for slug in ("add-docs", "new-greeting", "other"):
        assert run("submit", slug).code == 0
    assert run("start", "add-docs").code == 0
    rows = run("--json", "list").doc["result"]["candidates"]
    assert [(r["slug"], r["state"], r["position"]) for r in rows] == [
        ("add-docs", "applying", None),
        ("new-greeting", "pending", 1),
        ("other", "pending", 2),
    ]
    text = run("list").stdout.splitlines()
    assert text[0].split()[0] == "POS"
    assert [line.split()[0] for line in text[1:]] == ["-", "1", "2"]
    assert run("withdraw", "new-greeting", "--why", "later").code == 0
    rows = run("--json", "list").doc["result"]["candidates"]
    assert [(r["slug"], r["position"]) for r in rows] == [("add-docs", None), ("other", 1)]
    everything = run("--json", "list", "--all").doc["result"]["candidates"]
    assert [r["slug"] for r in everything] == ["add-docs", "other", "new-greeting"]
    picked = run("--json", "list", "--state", "withdrawn", "--state", "pending").doc["result"]
    assert [(r["slug"], r["position"]) for r in picked["candidates"]] == [
        ("other", 1),
        ("new-greeting", None),
    ]
    assert picked["states"] == ["pending", "withdrawn"]
