"""Queue controls as an operator types them: pause, unpause, drain, undrain, promote and
``submit --priority``, on a real repository with the default SQLite store (and one on
PostgreSQL), each logged with who and why and shown by ``list`` and ``show``."""

from __future__ import annotations

import pytest

from .conftest import MakeScratch, Scratch, read_until, spawn, states, watch

ANA = ("--actor", "ana")


def _order(s: Scratch, *db: str) -> list[str]:
    """The queued slugs in ``list``'s order (position 1 first)."""
    rows = s(*db, "--json", "list").doc["result"]["candidates"]
    return [r["slug"] for r in sorted(rows, key=lambda r: r["position"] or 99) if r["position"]]


def test_pause_freezes_apply_and_list_says_who_and_why(scratch: Scratch) -> None:
    """While paused, apply exits 4 and moves nothing; list says who and why; unpause frees it."""
    assert scratch("submit", "add-docs").code == 0
    paused = scratch(*ANA, "pause", "--why", "release freeze")
    assert paused.code == 0, paused.stderr
    assert "paused" in paused.stdout
    assert "ana" in paused.stdout
    before = scratch.snapshot()
    refused = scratch("apply")
    assert refused.code == 4
    assert refused.stderr.count("\n") == 1
    assert "paused by ana" in refused.stderr
    assert scratch.snapshot() == before
    listed = scratch("list").stdout
    assert "queue PAUSED by ana" in listed
    assert "release freeze" in listed
    assert "the unpause: paused by ana" in listed
    doc = scratch("--json", "list").doc["result"]["controls"]
    assert doc["paused"]["actor"] == "ana"
    assert doc["paused"]["why"] == "release freeze"
    assert scratch(*ANA, "unpause").code == 0
    assert scratch("--json", "list").doc["result"]["controls"]["paused"] is None
    assert scratch("apply").code == 0
    assert states(scratch)["add-docs"] == "integrated"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("unpause",), 4),
        (("undrain",), 4),
        (("pause",), 2),
        (("pause", "--why", "   "), 2),
        (("drain", "--why", ""), 2),
        (("promote", "no-such-slug", "--why", "hotfix"), 2),
        (("promote", "add-docs"), 2),
        (("submit", "other", "--why", "hotfix"), 2),
        (("submit", "other", "--priority"), 2),
    ],
)
def test_bad_control_is_one_line_and_writes_nothing(
    scratch: Scratch, args: tuple[str, ...], code: int
) -> None:
    """A control that does not fit (not paused, no why, an unknown slug) exits with one line."""
    assert scratch("submit", "add-docs").code == 0
    before = scratch.snapshot()
    done = scratch(*args)
    assert done.code == code, (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("mergegate: error:")
    assert scratch.snapshot() == before


@pytest.mark.parametrize("args", [("pause",), ("drain",), ("promote", "add-docs")])
def test_a_missing_why_is_named_and_the_help_says_it_is_required(
    scratch: Scratch, args: tuple[str, ...]
) -> None:
    """pause, drain and promote without --why say it is needed (no Python None); help too."""
    assert scratch("submit", "add-docs").code == 0
    done = scratch(*args)
    assert done.code == 2, (done.stdout, done.stderr)
    assert "None" not in done.stderr
    assert f"{args[0]} needs --why TEXT: say why" in done.stderr
    helped = scratch(args[0], "--help")
    assert "--why TEXT  Required: why" in helped.stdout, helped.stdout


def test_promote_of_an_integrated_candidate_says_it_is_integrated(scratch: Scratch) -> None:
    """promote of an integrated slug exits 4 saying so, not that no such candidate exists."""
    assert scratch("submit", "add-docs").code == 0
    assert scratch("apply").code == 0
    before = scratch.snapshot()
    done = scratch("promote", "add-docs", "--why", "x")
    assert done.code == 4, (done.stdout, done.stderr)
    assert "add-docs is integrated" in done.stderr
    assert "only a queued (pending or retry) candidate can be promoted" in done.stderr
    assert "no candidate" not in done.stderr
    assert scratch.snapshot() == before


def test_list_says_a_requeue_pause_in_plain_order(scratch: Scratch) -> None:
    """list under pause --requeue: nothing new until the unpause; the work in flight given back."""
    assert scratch(*ANA, "pause", "--requeue", "--why", "freeze").code == 0
    listed = scratch("list").stdout
    assert (
        "nothing new is applied until `mergegate unpause`; the work in flight was given back\n"
    ) in listed, listed


def test_a_second_pause_is_refused_naming_the_first(scratch: Scratch) -> None:
    """Pausing a paused queue exits 4, names who paused it, and logs nothing more."""
    assert scratch(*ANA, "pause", "--why", "freeze").code == 0
    before = scratch.snapshot()
    again = scratch("pause", "--why", "another")
    assert again.code == 4
    assert "already paused by ana" in again.stderr
    assert scratch.snapshot() == before


def test_promote_of_a_blocked_candidate_is_refused(blocked: Scratch) -> None:
    """Only a queued candidate can go first: a blocked one exits 4 and nothing changes."""
    before = blocked.snapshot()
    done = blocked("promote", "new-greeting", "--why", "hotfix")
    assert done.code == 4
    assert "blocked, not waiting in the queue" in done.stderr
    assert blocked.snapshot() == before


def test_drain_refuses_new_submits_while_the_queued_ones_go_on(scratch: Scratch) -> None:
    """Draining: a new submit exits 4 and writes nothing; queued candidates still apply."""
    assert scratch("submit", "add-docs").code == 0
    assert scratch(*ANA, "drain", "--why", "moving the store").code == 0
    assert "queue DRAINING (1 still queued) by ana" in scratch("list").stdout
    before = scratch.snapshot()
    refused = scratch("submit", "other")
    assert refused.code == 4
    assert "draining" in refused.stderr
    assert scratch.snapshot() == before
    assert scratch("apply").code == 0
    assert "queue DRAINED (the queue is empty) by ana" in scratch("list").stdout
    assert scratch("undrain", "--why", "store moved").code == 0
    assert scratch("submit", "other").code == 0
    assert states(scratch)["other"] == "pending"


def test_priority_submit_goes_first_in_list_and_in_apply(scratch: Scratch) -> None:
    """submit --priority puts the candidate at position 1; apply takes it before the others."""
    assert scratch("submit", "add-docs").code == 0
    assert scratch("submit", "new-greeting").code == 0
    done = scratch(*ANA, "submit", "other", "--priority", "--why", "outage fix")
    assert done.code == 0, done.stderr
    assert "promoted other: first in the queue: outage fix" in done.stdout
    assert _order(scratch) == ["other", "add-docs", "new-greeting"]
    shown = scratch("show", "other")
    assert "promoted:   first in the queue by ana" in shown.stdout
    assert scratch("--json", "show", "other").doc["result"]["promoted"]["why"] == "outage fix"
    applied = scratch("--json", "apply").doc["result"]
    assert applied["candidate"]["slug"] == "other"
    assert _order(scratch) == ["add-docs", "new-greeting"]


def test_promote_reorders_the_queue(scratch: Scratch) -> None:
    """promote SLUG moves a queued candidate to position 1; the rest keep their order."""
    for slug in ("add-docs", "new-greeting", "other"):
        assert scratch("submit", slug).code == 0
    done = scratch(*ANA, "--json", "promote", "new-greeting", "--why", "release blocker")
    assert done.code == 0
    entry = done.doc["result"]
    assert (entry["action"], entry["actor"], entry["slug"]) == ("promote", "ana", "new-greeting")
    assert _order(scratch) == ["new-greeting", "add-docs", "other"]


def test_run_honours_a_pause_and_goes_on_after_the_unpause(scratch: Scratch) -> None:
    """A running integrator applies nothing while paused, stays up, and integrates after unpause."""
    run = spawn(scratch, "run", "--poll", "5")
    try:
        read_until(run, "queue empty: waiting for candidates")
        assert scratch(*ANA, "pause", "--why", "release freeze").code == 0
        read_until(run, "queue paused by ana")
        assert scratch("submit", "add-docs").code == 0
        # A submit wakes the loop (the change feed): it looks and still applies nothing.
        assert scratch("list").code == 0
        assert states(scratch)["add-docs"] == "pending"
        assert run.poll() is None
        assert scratch("unpause").code == 0
        read_until(run, "add-docs", count=1)
        read_until(run, "integrated")
        assert states(scratch)["add-docs"] == "integrated"
    finally:
        run.terminate()
        code, out, err = watch(run).finish()
    assert code == 0, (out, err)
    assert out.count("queue paused by ana") == 1
    assert "queue unpaused: taking the queue again" in out


def test_run_says_the_unpause_before_it_applies(scratch: Scratch) -> None:
    """Candidates waiting at the unpause: run says it is unpaused before it applies them."""
    assert scratch("submit", "add-docs").code == 0
    assert scratch(*ANA, "pause", "--why", "release freeze").code == 0
    run = spawn(scratch, "run", "--poll", "30")
    live = watch(run)
    try:
        live.wait_for("queue paused by ana")
        assert scratch("unpause").code == 0
        live.wait_for("add-docs", count=1)
        lines = live.lines()
        unpaused = [i for i, line in enumerate(lines) if "queue unpaused" in line]
        applying = [i for i, line in enumerate(lines) if "add-docs" in line]
        assert unpaused, live.report()
        assert unpaused[0] < applying[0], live.report()
        live.wait_for("integrated")
    finally:
        run.terminate()
        code, out, err = live.finish()
    assert code == 0, (out, err)
    assert out.count("queue unpaused: taking the queue again") == 1, out


def test_run_says_a_drain_once_and_its_end(scratch: Scratch) -> None:
    """run names a drain once (who and why, what it refuses) when it sees it, and the undrain."""
    assert scratch(*ANA, "drain", "--why", "moving the store").code == 0
    run = spawn(scratch, "run", "--poll", "30")
    live = watch(run)
    try:
        live.wait_for("queue draining (by ana: moving the store): new submissions refused")
        assert scratch("undrain", "--why", "moved").code == 0
        assert scratch("submit", "add-docs").code == 0
        live.wait_for("integrated")
        assert scratch(*ANA, "drain", "--why", "again").code == 0
        live.wait_for("queue draining (by ana: again)")
    finally:
        run.terminate()
        code, out, err = live.finish()
    assert code == 0, (out, err)
    assert out.count("queue draining (by ana: moving the store)") == 1, out
    assert out.count("queue undrained: new submissions are taken again") == 1, out
    assert out.index("queue undrained") < out.index("add-docs"), out


def test_controls_on_postgres(make_scratch: MakeScratch, pg_url: str) -> None:
    """On PostgreSQL the pause, the promote and the drain are the store's, seen by every command."""
    s = make_scratch("fresh")
    db = ("--db", pg_url)
    assert s(*db, "init").code == 0
    for slug in ("add-docs", "other"):
        assert s(*db, "submit", slug).code == 0
    assert s(*db, *ANA, "promote", "other", "--why", "hotfix").code == 0
    assert _order(s, *db) == ["other", "add-docs"]
    assert s(*db, *ANA, "pause", "--why", "freeze").code == 0
    assert s(*db, "apply").code == 4
    assert s(*db, "drain", "--why", "move").code == 0
    assert s(*db, "submit", "new-greeting").code == 4
    assert "queue PAUSED by ana" in s(*db, "list").stdout
    assert s(*db, "unpause").code == 0
    assert s(*db, "--json", "apply").doc["result"]["candidate"]["slug"] == "other"
    assert states(s, *db)["other"] == "integrated"


def test_a_why_without_priority_says_it_goes_with_priority(scratch: Scratch) -> None:
    """submit --why without --priority: one line saying --why goes with --priority, exit 2."""
    done = scratch("submit", "other", "--why", "hotfix")
    assert done.code == 2, (done.stdout, done.stderr)
    assert "--why goes with --priority" in done.stderr, done.stderr
    helped = scratch("apply", "--help")
    assert "FIFO" not in helped.stdout
    assert "queue order" in helped.stdout, helped.stdout
