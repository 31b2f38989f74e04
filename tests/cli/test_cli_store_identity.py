"""One store per repository: a second store pointed at the same main is refused, not a second queue.

The issue's scenario, run as an operator would: after ``init`` with the default
store, ``MERGEGATE_DB`` points at a second store and ``init``, ``submit`` and
``run --once`` are each refused with one line naming both stores and the
command that fixes it; nothing is written and ``main`` does not move.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MakeScratch, Result, Scratch, _env, git


def _with_db(s: Scratch, db: Path | str, *args: str) -> Result:
    """Run ``mergegate ARGS`` in the bare repository with ``MERGEGATE_DB`` set, as a shell would."""
    env = _env() | {"MERGEGATE_DB": str(db)}
    done = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", *args],
        cwd=s.bare,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Result(done.returncode, done.stdout, done.stderr)


def _store_id(s: Scratch) -> str:
    return git(s.bare, "config", "--local", "--get", "mergegate.store-id")


def test_init_binds_the_repository_and_the_store_to_each_other(make_scratch: MakeScratch) -> None:
    """init records the store's id in git config and the repository's root commit in the store."""
    s = make_scratch("fresh")
    done = s("--json", "init")
    assert done.code == 0, done.stderr
    result = done.doc["result"]
    root = git(s.bare, "rev-list", "--max-parents=0", "main")
    assert result["repository_root"] == root
    assert result["store_id"] == _store_id(s)
    recorded = git(s.bare, "config", "--local", "--get", "mergegate.store")
    assert recorded == "the default store, <git-common-dir>/mergegate/mergegate.sqlite3"
    again = s("--json", "init")
    assert again.doc["result"]["store_id"] == result["store_id"]


def test_a_second_store_is_refused_for_init_submit_and_run(make_scratch: MakeScratch) -> None:
    """MERGEGATE_DB at a second store: init, submit and run --once each refused in one line."""
    s = make_scratch("ready")
    assert s("submit", "add-docs").code == 0
    first_id = _store_id(s)
    second = s.root / "second.sqlite3"
    main = s.main()
    before = s.snapshot()
    for args in (
        ("init",),
        ("submit", "new-greeting"),
        ("run", "--once"),
    ):
        done = _with_db(s, second, *args)
        assert done.code == 2, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        line = done.stderr
        assert f"belongs to store {first_id[:12]} (the default store, " in line, line
        assert str(second) in line, line
        # Nothing is at that path: the line must not call it a store.
        assert f"{second} (no store exists there)" in line, line
        assert "mergegate export FILE" in line
        assert "mergegate import FILE" in line
        assert not second.exists(), "a refused command made the second store"
    assert s.main() == main
    assert s.snapshot() == before
    # The first store still serves the repository.
    assert s("run", "--once").code == 0
    assert s.main() != main


def test_a_relative_missing_store_is_named_by_its_full_path(make_scratch: MakeScratch) -> None:
    """A relative MERGEGATE_DB naming no file is refused with the full path it was taken as."""
    s = make_scratch("ready")
    done = _with_db(s, "elsewhere.sqlite3", "submit", "add-docs")
    assert done.code == 2, done.stderr
    assert f"{s.bare / 'elsewhere.sqlite3'} (no store exists there)" in done.stderr, done.stderr
    assert not (s.bare / "elsewhere.sqlite3").exists()


def test_a_second_store_that_exists_is_refused_too(make_scratch: MakeScratch) -> None:
    """A second store made for another clone of the project is refused for this repository."""
    s = make_scratch("ready")
    other = make_scratch("fresh")  # the same project: the same root commit
    assert other("init").code == 0  # its own store, with an id of its own
    assert _store_id(other) != _store_id(s)
    main = s.main()
    done = _with_db(s, other.db, "submit", "add-docs")
    assert done.code == 2
    assert "belongs to store" in done.stderr
    assert "store " + _store_id(other)[:12] in done.stderr
    assert s.main() == main


def test_a_store_of_another_project_is_refused(make_scratch: MakeScratch, tmp_path: Path) -> None:
    """A store bound to another repository (another root commit) refuses this one's init."""
    s = make_scratch("ready")
    stranger = tmp_path / "stranger.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(stranger))
    tree = git(stranger, "mktree", "--missing")
    commit = git(stranger, "commit-tree", "-m", "another project", tree)
    git(stranger, "update-ref", "refs/heads/main", commit)
    done = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(stranger), "--db", str(s.db), "init"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert "serves the repository whose root commit is" in done.stderr
    assert commit[:12] in done.stderr
    assert "--db or MERGEGATE_DB" in done.stderr


def test_export_then_import_moves_the_queue_and_retires_the_old_store(
    make_scratch: MakeScratch,
) -> None:
    """export FILE, then import FILE with a new store: the queue runs there; the old is refused."""
    s = make_scratch("ready")
    assert s("submit", "add-docs").code == 0
    assert s("run", "--once").code == 0
    assert s("submit", "other").code == 0
    dump = s.root / "queue.json"
    exported = s("--json", "export", str(dump))
    assert exported.code == 0, exported.stderr
    assert exported.doc["result"]["rows"]["candidates"] == 2
    assert s("export", str(dump)).code == 2  # never overwrites
    new = s.root / "new.sqlite3"
    imported = _with_db(s, new, "--json", "import", str(dump))
    assert imported.code == 0, imported.stderr
    new_id = imported.doc["result"]["store_id"]
    assert _store_id(s) == new_id
    # The old store is refused now, for moves; the new one runs the queue.
    refused = s("submit", "new-greeting")
    assert refused.code == 2
    assert f"belongs to store {new_id[:12]}" in refused.stderr
    main = s.main()
    assert _with_db(s, new, "run", "--once").code == 0
    assert s.main() != main
    listed = _with_db(s, new, "--json", "list", "--all").doc["result"]
    assert sorted(c["slug"] for c in listed["candidates"]) == ["add-docs", "other"]
    assert _with_db(s, new, "verify").code == 0
    # The moved rows are the same rows: a second export's tables equal the first's.
    again = s.root / "again.json"
    before = json.loads(dump.read_text())
    assert _with_db(s, new, "export", str(again)).code == 0
    after = json.loads(again.read_text())
    moved_on = {"other"}
    for table in ("candidates", "transitions"):
        rows = [r for r in before["tables"][table] if r.get("slug") not in moved_on]
        if table == "transitions":
            ids = {c["id"] for c in before["tables"]["candidates"] if c["slug"] in moved_on}
            rows = [r for r in before["tables"][table] if r["candidate_id"] not in ids]
            assert [r for r in after["tables"][table] if r["candidate_id"] not in ids] == rows
        else:
            assert [r for r in after["tables"][table] if r["slug"] not in moved_on] == rows


def test_import_refuses_a_store_that_holds_a_queue_and_a_bad_file(
    make_scratch: MakeScratch,
) -> None:
    """Importing into the repository's own store, or a file that is no export, writes nothing."""
    s = make_scratch("ready")
    assert s("submit", "add-docs").code == 0
    dump = s.root / "queue.json"
    assert s("export", str(dump)).code == 0
    before = s.snapshot()
    same = s("import", str(dump))
    assert same.code == 2
    assert same.stderr.count("\n") == 1
    bad = s.root / "bad.json"
    bad.write_text('{"format": "something else"}')
    new = s.root / "new.sqlite3"
    done = _with_db(s, new, "import", str(bad))
    assert done.code == 2
    assert "not a mergegate-queue export" in done.stderr
    assert not new.exists()
    assert s.snapshot() == before


@pytest.mark.postgres
def test_a_second_store_on_postgres_is_refused_and_gets_no_queue(
    make_scratch: MakeScratch, pg_url: str
) -> None:
    """MERGEGATE_DB at a PostgreSQL store: init, submit, run --once refused; it holds nothing."""
    s = make_scratch("ready")
    main = s.main()
    for args in (("init",), ("submit", "add-docs"), ("run", "--once")):
        done = _with_db(s, pg_url, *args)
        assert done.code == 2, (args, done.stderr)
        assert "belongs to store" in done.stderr
        assert "a store bound to no repository" in done.stderr
    listed = _with_db(s, pg_url, "--json", "list", "--all")
    assert listed.doc["result"]["candidates"] == []
    assert s.main() == main
