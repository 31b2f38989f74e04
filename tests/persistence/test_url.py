"""Opening a store from the one string given as ``--db`` or ``MERGEGATE_DB``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore, open_store
from mergegate.statemachine import InvalidInput


def _sqlite_path(url: str) -> Path:
    store = open_store(url)
    try:
        assert isinstance(store, SQLiteStore)
        return store.path
    finally:
        store.close()


def test_sqlite_urls_and_plain_paths_open_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sqlite:///abs, sqlite:relative and a plain path all open the SQLite file they name."""
    monkeypatch.chdir(tmp_path)
    assert _sqlite_path(f"sqlite://{tmp_path}/a.db") == tmp_path / "a.db"
    assert _sqlite_path("sqlite:sub.db") == Path("sub.db")
    assert _sqlite_path(str(tmp_path / "plain.db")) == tmp_path / "plain.db"
    assert _sqlite_path("odd:name.db") == Path("odd:name.db")
    assert {p.name for p in tmp_path.iterdir()} >= {"a.db", "sub.db", "plain.db", "odd:name.db"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mysql://me:hunter2@db/queue", "unknown scheme 'mysql'"),
        ("sqlite://relative.db", "needs an absolute path"),
        ("sqlite:", "no file path"),
        ("  ", "use sqlite:///absolute/path"),
        ("postgresql://h/db?schema=a&schema=b", "give one non-empty schema parameter"),
    ],
)
def test_other_urls_are_refused_clearly(url: str, says: str) -> None:
    """A URL mergegate cannot open raises InvalidInput saying why, without any password."""
    with pytest.raises(InvalidInput, match=says) as info:
        open_store(url)
    assert "hunter2" not in str(info.value)


def test_sqlite_users_do_not_import_psycopg() -> None:
    """Importing the persistence package and opening SQLite never loads psycopg."""
    code = (
        "import sys, tempfile, pathlib\n"
        "from mergegate.persistence import open_store\n"
        "d = tempfile.mkdtemp()\n"
        "open_store(str(pathlib.Path(d) / 'x.db')).close()\n"
        "print('psycopg' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.postgres
def test_postgresql_url_opens_postgres_in_its_schema(pg_server: str, pg_schema: str) -> None:
    """postgresql://...?schema=name opens a PostgresStore whose tables live in that schema."""
    from mergegate.persistence import PostgresStore

    joiner = "&" if "?" in pg_server else "?"
    store = open_store(f"{pg_server}{joiner}schema={pg_schema}")
    try:
        assert isinstance(store, PostgresStore)
        assert store.schema == pg_schema
        assert store._query("SELECT current_schema()") == [(pg_schema,)]
    finally:
        store.close()
    alias = open_store(
        pg_server.replace("postgresql://", "postgres://", 1) + f"{joiner}schema={pg_schema}"
    )
    alias.close()
    assert isinstance(alias, PostgresStore)
