"""Store errors say by type whether a retry may help and whether anything was committed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import OutcomeUnknown, StoreError, StoreUnavailable


def test_a_file_that_is_not_a_database_is_a_plain_store_error(tmp_path: Path) -> None:
    """Not a database: a StoreError that is not StoreUnavailable (a retry fails the same way)."""
    path = tmp_path / "notes.txt"
    path.write_text("this is not sqlite\n" * 200)
    with pytest.raises(StoreError) as info:
        SQLiteStore(path)
    assert not isinstance(info.value, StoreUnavailable)
    assert info.value.committed is False
    assert "not a database" in str(info.value)
    assert path.read_text().startswith("this is not sqlite")


def test_a_store_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    """A path whose folder is missing: StoreUnavailable, nothing committed, one line."""
    with pytest.raises(StoreUnavailable) as info:
        SQLiteStore(tmp_path / "missing" / "store.sqlite3")
    assert info.value.committed is False
    assert "\n" not in str(info.value)
    assert not (tmp_path / "missing").exists()


@pytest.mark.postgres
def test_a_server_that_does_not_answer_is_unavailable(pg_server: str) -> None:
    """No server on the port: StoreUnavailable, with the password never shown."""
    from mergegate.persistence import PostgresStore

    with pytest.raises(StoreUnavailable) as info:
        PostgresStore("postgresql://u:secret@127.0.0.1:1/test", connect_timeout=2)
    assert info.value.committed is False
    assert "secret" not in str(info.value)


def test_an_unknown_outcome_says_so_in_committed() -> None:
    """OutcomeUnknown is a StoreError whose committed is None: neither yes nor no."""
    err = OutcomeUnknown("postgresql", "the connection was lost while committing")
    assert isinstance(err, StoreError)
    assert err.committed is None
    assert str(err) == "postgresql store: the connection was lost while committing"
