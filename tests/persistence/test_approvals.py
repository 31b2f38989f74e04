"""Approvals of configuration changes, on a SQLite file and on PostgreSQL: the Engine's
approve and resume, and the approvals moving with an exported queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.persistence.transfer import export_queue, import_queue
from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    CandidateNotFound,
    Engine,
    Evidence,
    FollowUpNotResolved,
    InvalidInput,
    MergegateError,
    Reason,
    State,
    Store,
)

SHA = "a" * 40
MAIN = "1" * 40


class _Open:
    """A resolver that never finds a follow-up done: only an approval can settle the block."""

    def unresolved_reason(self, _record: object) -> str | None:
        return "the follow-up todo is still open"


def _held(store: Store, slug: str = "gate", sha: str = SHA) -> Engine:
    """``slug`` submitted at ``sha``, applied and blocked as config_changed."""
    engine = Engine(store, resolver=_Open())
    engine.submit(CandidateKey(slug, slug, sha))
    started = engine.start_apply(slug, owner="t")
    report = BlockedReport(
        Reason.CONFIG_CHANGED,
        MAIN,
        Evidence(files=("mergegate.toml",), diagnostic="-old\n+new\n"),
    )
    engine.block(slug, report, expected_seq=started.candidate.seq)
    return engine


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "s.sqlite3")
    pg: Store = request.getfixturevalue("pg")
    return pg


def test_resume_waits_for_the_approval_not_the_todo(store: Store) -> None:
    """Unapproved, resume is refused; approved, the held candidate is remediating and resumes."""
    engine = _held(store)
    engine.start_remediation("gate")
    with pytest.raises(FollowUpNotResolved, match="not approved"):
        engine.resume("gate")
    approval = engine.approve("gate", sha=SHA, why="reviewed the new checks", actor="ops")
    assert (approval.slug, approval.sha, approval.actor) == ("gate", SHA, "ops")
    assert store.approval("gate", SHA) == approval
    assert engine.resume("gate").candidate.state is State.RETRY


def test_approve_moves_a_held_candidate_to_remediating(store: Store) -> None:
    """A blocked config_changed candidate is remediating after its approval; again is a no-op."""
    engine = _held(store)
    first = engine.approve("gate", sha=SHA, why="reviewed", actor="ops")
    assert engine.get("gate").state is State.REMEDIATING
    assert engine.approve("gate", sha=SHA, why="another word", actor="eve") == first
    assert store.approvals() == [first]


def test_hostile_approvals_write_nothing(store: Store) -> None:
    """A stale, short or non-hex sha, an unknown slug, an empty why: refused, nothing written."""
    engine = _held(store)
    seq = engine.get("gate").seq
    for call, kind in (
        (lambda: engine.approve("gate", sha="b" * 40, why="ok"), InvalidInput),
        (lambda: engine.approve("gate", sha=SHA[:12], why="ok"), InvalidInput),
        (lambda: engine.approve("gate", sha="g" * 40, why="ok"), InvalidInput),
        (lambda: engine.approve("nobody", sha=SHA, why="ok"), CandidateNotFound),
        (lambda: engine.approve("gate", sha=SHA, why=" \n"), InvalidInput),
    ):
        with pytest.raises(kind):
            call()
    assert store.approvals() == []
    assert engine.get("gate").seq == seq
    assert engine.get("gate").state is State.BLOCKED


def test_a_finished_candidate_cannot_be_approved(store: Store) -> None:
    """An integrated candidate has nothing left to approve."""
    engine = Engine(store)
    engine.submit(CandidateKey("done", "done", SHA))
    engine.start_apply("done", owner="t")
    engine.integrate("done", main_sha=MAIN)
    with pytest.raises(MergegateError, match="integrated"):
        engine.approve("done", sha=SHA, why="late")
    assert store.approvals() == []


def test_approvals_move_with_an_exported_queue(store: Store, tmp_path: Path) -> None:
    """Export then import (to the other backend too) keeps every approval as logged."""
    engine = _held(store)
    engine.approve("gate", sha=SHA, why="reviewed", actor="ops")
    document = json.loads(json.dumps(export_queue(store)))  # type: ignore[arg-type]
    assert [r["sha"] for r in document["tables"]["approvals"]] == [SHA]
    target = SQLiteStore(tmp_path / "moved.sqlite3")
    import_queue(target, document)
    assert target.approvals() == store.approvals()
    assert target.approval("gate", SHA) is not None


def test_an_export_from_before_approvals_still_imports(tmp_path: Path) -> None:
    """An export written before the approvals table existed imports with no approvals."""
    source = SQLiteStore(tmp_path / "old.sqlite3")
    Engine(source).submit(CandidateKey("aa", "aa", SHA))
    document = json.loads(json.dumps(export_queue(source)))
    del document["tables"]["approvals"]
    target = SQLiteStore(tmp_path / "new.sqlite3")
    assert import_queue(target, document)["candidates"] == 1
    assert target.approvals() == []
