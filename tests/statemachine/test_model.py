"""The stateful model test of the Engine on a real SQLite file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import Store
from mergegate.statemachine.testing.model import EngineModelMachine

from ..examples import fraction


class SQLiteModelMachine(EngineModelMachine):
    """The model machine over a fresh SQLite file per example."""

    def make_store(self) -> Store:
        self._dir = tempfile.TemporaryDirectory()
        return SQLiteStore(Path(self._dir.name) / "model.sqlite3")

    def teardown(self) -> None:
        super().teardown()
        self._dir.cleanup()


TestEngineAgainstModel = SQLiteModelMachine.TestCase
TestEngineAgainstModel.settings = fraction(2 / 3, stateful_step_count=50)


@pytest.mark.slow
class TestEngineAgainstModelLong(SQLiteModelMachine.TestCase):  # type: ignore[name-defined,misc]
    """A long run of the same model test, for CI."""

    settings = fraction(1 / 3, stateful_step_count=60)
