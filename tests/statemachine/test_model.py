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


def test_the_model_covers_every_edge_of_the_table_and_names_what_it_leaves_out() -> None:
    """The model's hand-written lifecycle is the table's edges; what it skips is named."""
    from mergegate.statemachine import TABLE
    from mergegate.statemachine.testing import model

    table = {
        (source.value, event.value): dest.value
        for source, event, dest in TABLE.edges()
        if source is not None
    }
    assert table == model._SPEC
    assert model.LEFT_OUT
    assert all("chain" in what for what in model.LEFT_OUT)
