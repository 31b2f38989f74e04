"""A queue moved between stores keeps every row and its order, SQLite to PostgreSQL and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mergegate.apply.runners import CheckJob
from mergegate.persistence import SQLiteStore
from mergegate.persistence.checkbuilds import CheckBuilds
from mergegate.persistence.contract import conflict_report
from mergegate.persistence.transfer import export_queue, import_queue
from mergegate.statemachine import CandidateKey, Engine, InvalidInput, Store, StoreError


def _queue(store: Store) -> None:
    """Candidates in every kind of state, a block with evidence, a resume, an acknowledgement."""
    engine = Engine(store)
    for slug in ("aa", "bb", "cc", "dd"):
        engine.submit(CandidateKey(slug, slug, "a" * 40))
    engine.start_apply("aa", owner="t")
    engine.integrate("aa", main_sha="1" * 40)
    engine.start_apply("bb", owner="t")
    engine.block("bb", conflict_report("x.py", main="1" * 40))
    engine.start_remediation("bb")
    engine.resume("bb", force_reason="fixed: nul \x00 and ünïcode kept")
    engine.withdraw("dd", why="not needed")
    store.acknowledge(
        "2" * 40, "hotfix on the server", actor="ops", at=store.candidates()[0].submitted_at
    )
    builds = CheckBuilds(store)  # type: ignore[arg-type]
    job = CheckJob(CandidateKey("cc", "cc", "a" * 40), "1" * 40, "a" * 40, "3" * 40, lambda: "")
    builds.finish_build(builds.add_build(job, "unit", 1, "buildbot", "17", None), "failed", 1)


def _tables(store: Store) -> str:
    document = export_queue(store)  # type: ignore[arg-type]
    return json.dumps(document["tables"], sort_keys=True)


@pytest.fixture
def source(tmp_path: Path) -> SQLiteStore:
    """A SQLite store holding a queue in every state."""
    opened = SQLiteStore(tmp_path / "old.sqlite3")
    _queue(opened)
    return opened


def test_sqlite_to_sqlite_keeps_every_row_and_the_order(
    source: SQLiteStore, tmp_path: Path
) -> None:
    """Import into a new file: the same rows, the same queue, and the next submit goes behind it."""
    document = json.loads(json.dumps(export_queue(source)))
    target = SQLiteStore(tmp_path / "new.sqlite3")
    counts = import_queue(target, document)
    assert counts["candidates"] == 4
    assert _tables(target) == _tables(source)
    assert [c.key.slug for c in target.queue()] == ["cc", "bb"]
    Engine(target).submit(CandidateKey("ee", "ee", "b" * 40))
    assert [c.key.slug for c in target.queue()] == ["cc", "bb", "ee"]
    assert Engine(target).verify() == []
    assert target.integrity_problems() == []
    # The facts in columns and the builds travel too.
    aa = target.history(Engine(target).get("aa").id)
    assert [(t.lease_owner, t.main_sha) for t in aa[1:]] == [("t", None), (None, "1" * 40)]
    rows = CheckBuilds(target).builds()
    assert [(r.slug, r.check, r.state, r.build_id) for r in rows] == [
        ("cc", "unit", "failed", "17")
    ]


def test_an_export_from_before_the_facts_and_builds_still_imports(
    source: SQLiteStore, tmp_path: Path
) -> None:
    """An older export (no lease_owner/main_sha/interrupted, no check_builds) imports with none."""
    document = json.loads(json.dumps(export_queue(source)))
    del document["tables"]["check_builds"]
    for row in document["tables"]["transitions"]:
        for name in ("lease_owner", "main_sha", "interrupted"):
            del row[name]
    target = SQLiteStore(tmp_path / "older.sqlite3")
    assert import_queue(target, document)["check_builds"] == 0
    assert {t.lease_owner for t in target.history(Engine(target).get("aa").id)} == {None}


@pytest.mark.postgres
def test_sqlite_to_postgres_and_back(source: SQLiteStore, pg: Store, tmp_path: Path) -> None:
    """A SQLite queue imported into PostgreSQL, exported again, equals the original row for row."""
    import_queue(pg, json.loads(json.dumps(export_queue(source))))  # type: ignore[arg-type]
    assert _tables(pg) == _tables(source)
    assert [c.key.slug for c in pg.queue()] == ["cc", "bb"]
    # The sequences moved past the imported rows: new rows get new ids and places.
    Engine(pg).submit(CandidateKey("ee", "ee", "b" * 40))
    assert [c.key.slug for c in pg.queue()] == ["cc", "bb", "ee"]
    assert Engine(pg).verify() == []
    back = SQLiteStore(tmp_path / "back.sqlite3")
    import_queue(back, json.loads(json.dumps(export_queue(pg))))  # type: ignore[arg-type]
    assert _tables(back) == _tables(pg)


def test_import_refuses_a_non_empty_store_and_a_bad_document(
    source: SQLiteStore, tmp_path: Path
) -> None:
    """Nothing is written for a store that holds a queue, or a malformed row."""
    document = json.loads(json.dumps(export_queue(source)))
    with pytest.raises(StoreError, match="already holds a queue"):
        import_queue(source, document)
    target = SQLiteStore(tmp_path / "new.sqlite3")
    document["tables"]["transitions"][3]["at"] = 12
    with pytest.raises(InvalidInput, match="transitions row 4"):
        import_queue(target, document)
    assert target.candidates() == []
    with pytest.raises(InvalidInput, match="not a mergegate-queue export"):
        import_queue(target, {"format": "other"})


def test_export_refuses_while_the_lease_is_held(source: SQLiteStore) -> None:
    """A queue is moved only while no integrator holds the lease."""
    Engine(source).start_apply("cc", owner="busy")
    with pytest.raises(StoreError, match="held by busy"):
        export_queue(source)
