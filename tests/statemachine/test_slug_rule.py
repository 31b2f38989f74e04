"""The Engine's slug rule is pluggable, and what it (or a call) names is checked before anything
is written."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    Engine,
    Evidence,
    InvalidInput,
    Reason,
    State,
)

MAIN = "f" * 40
REPORT = BlockedReport(Reason.EXTERNAL, MAIN, Evidence(diagnostic="ci is red"))
Owner = Callable[[str], CandidateKey | None]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh SQLite store file."""
    opened = SQLiteStore(tmp_path / "db.sqlite3")
    yield opened
    opened.close()


def applying(engine: Engine, slug: str, sha: str) -> CandidateKey:
    """Submit ``slug`` at ``sha`` and start its apply."""
    key = CandidateKey(slug, slug, sha)
    engine.submit(key)
    engine.start_apply(slug, owner="w")
    return key


def test_a_custom_rule_names_the_follow_up(store: SQLiteStore) -> None:
    """The rule's slug is recorded, and the same identity keeps it on a replay."""

    def ticket(key: CandidateKey, owner: Owner) -> str:
        return f"ticket-{key.slug}"

    engine = Engine(store, follow_up_slug=ticket)
    applying(engine, "auth", "a" * 40)
    first = engine.block("auth", REPORT)
    again = engine.block("auth", REPORT, follow_up="ignored-on-replay")
    assert first.blocked is not None
    assert again.blocked is not None
    assert first.blocked.follow_up_slug == again.blocked.follow_up_slug == "ticket-auth"


@pytest.mark.parametrize("bad", ["Not A Slug", "x" * 200])
def test_an_invalid_slug_from_the_rule_writes_nothing(store: SQLiteStore, bad: str) -> None:
    """A rule that returns an invalid slug makes the block raise InvalidInput; nothing moves."""
    engine = Engine(store, follow_up_slug=lambda key, owner: bad)
    applying(engine, "auth", "a" * 40)
    with pytest.raises(InvalidInput, match="follow-up slug"):
        engine.block("auth", REPORT)
    assert engine.get("auth").state is State.APPLYING
    assert store.blocked_records() == []
    assert store.follow_up_jobs() == []


def test_a_slug_held_by_another_identity_is_refused(store: SQLiteStore) -> None:
    """A rule that ignores ``owner`` cannot hand one follow-up to two identities."""
    engine = Engine(store, follow_up_slug=lambda key, owner: "shared-fix")
    applying(engine, "auth", "a" * 40)
    engine.block("auth", REPORT)
    applying(engine, "billing", "b" * 40)
    with pytest.raises(InvalidInput, match="it is the follow-up of auth"):
        engine.block("billing", REPORT)
    assert engine.get("billing").state is State.APPLYING
    assert [r.key.slug for r in store.blocked_records()] == ["auth"]


def test_an_explicit_slug_is_validated_on_the_request(store: SQLiteStore) -> None:
    """block(follow_up=...) with an invalid slug is refused before the transaction."""
    engine = Engine(store)
    applying(engine, "auth", "a" * 40)
    with pytest.raises(InvalidInput, match="invalid follow-up slug 'Bad Slug'"):
        engine.block("auth", REPORT, follow_up="Bad Slug")
    assert engine.get("auth").state is State.APPLYING
