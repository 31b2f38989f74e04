"""Store fixtures: every contract test runs against each real backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import Store


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend."""
    opened = SQLiteStore(tmp_path / "store.sqlite3")
    yield opened
    opened.close()
