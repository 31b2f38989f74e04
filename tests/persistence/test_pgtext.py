"""The exact NUL-free encoding of free text the PostgreSQL store writes."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mergegate.persistence.pgtext import from_pg, json_from_pg, json_to_pg, to_pg

_TEXT = st.text(st.sampled_from(["\0", "\ue000", "0", "a", "é", "\n"]) | st.characters())


@given(_TEXT)
def test_text_round_trips_without_nul(value: str) -> None:
    """Any text comes back exactly, and what PostgreSQL sees has no NUL."""
    stored = to_pg(value)
    assert "\0" not in stored
    assert from_pg(stored) == value


@given(
    st.recursive(
        _TEXT | st.integers() | st.none(), lambda c: st.lists(c) | st.dictionaries(_TEXT, c)
    )
)
def test_json_round_trips_without_nul(data: object) -> None:
    """Strings nested anywhere in JSON data are encoded and decoded alike."""
    stored = json_to_pg(data)
    assert "\\u0000" not in json.dumps(stored)
    assert json_from_pg(stored) == data
