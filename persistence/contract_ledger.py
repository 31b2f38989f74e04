"""The ledger's part of the store contract (:class:`~.contract.StoreContract` runs it).

The store's binding to its repository, the acknowledged outside moves of
``main`` and the approved configuration changes are each kept as first
logged; invalid input writes nothing.
"""

from __future__ import annotations

from mergegate.statemachine import MergegateError, Store

from .contract_steps import T0, _at, _raises

__all__ = ["LedgerContract"]


class LedgerContract:
    """The ledger every store keeps."""

    def test_bind_repository_keeps_the_first_binding(self, store: Store) -> None:
        """identity is None until bound; a second bind, even to another repository, keeps it."""
        assert store.identity() is None
        first = store.bind_repository("1" * 40, actor="init", at=T0)
        assert first.repository == "1" * 40
        assert (first.bound_by, first.bound_at) == ("init", T0)
        assert len(first.store_id) == 32
        assert store.bind_repository("2" * 40, actor="other", at=_at(1)) == first
        assert store.identity() == first

    def test_bind_repository_refuses_a_bad_root_and_writes_nothing(self, store: Store) -> None:
        """A repository id that is not a full commit id is refused before anything is written."""
        err = _raises(MergegateError, lambda: store.bind_repository("main", actor="init", at=T0))
        assert "repository root commit" in str(err), err
        assert store.identity() is None

    def test_acknowledge_logs_once_per_commit(self, store: Store) -> None:
        """An acknowledgement is kept as first logged; the list is oldest first."""
        assert store.acknowledgements() == []
        b = store.acknowledge("b" * 40, "hotfix pushed to the server", actor="ops", at=_at(2))
        a = store.acknowledge("a" * 40, "release tag commit", actor="ops", at=_at(1))
        again = store.acknowledge("b" * 40, "something else", actor="mallory", at=_at(3))
        assert again == b
        assert (b.sha, b.why, b.actor, b.at) == (
            "b" * 40,
            "hotfix pushed to the server",
            "ops",
            _at(2),
        )
        assert store.acknowledgements() == [a, b]
        _raises(MergegateError, lambda: store.acknowledge("c" * 40, "  ", actor="ops", at=_at(4)))
        _raises(MergegateError, lambda: store.acknowledge("HEAD", "why", actor="ops", at=_at(4)))
        assert store.acknowledgements() == [a, b]

    def test_approve_logs_once_per_slug_and_sha(self, store: Store) -> None:
        """An approval is kept as first logged, per exact slug and sha; bad input writes nothing."""
        assert store.approvals() == []
        assert store.approval("aa", "a" * 40) is None
        first = store.approve("aa", "a" * 40, "reviewed the new checks", actor="ops", at=_at(1))
        again = store.approve("aa", "a" * 40, "something else", actor="mallory", at=_at(2))
        other = store.approve("aa", "b" * 40, "reviewed again", actor="ops", at=_at(3))
        assert again == first
        assert (first.slug, first.sha, first.why, first.actor, first.at) == (
            "aa",
            "a" * 40,
            "reviewed the new checks",
            "ops",
            _at(1),
        )
        assert store.approval("aa", "a" * 40) == first
        assert store.approval("bb", "a" * 40) is None
        assert store.approvals() == [first, other]
        for bad in (
            lambda: store.approve("aa", "c" * 40, " ", actor="ops", at=_at(4)),
            lambda: store.approve("aa", "abc123", "why", actor="ops", at=_at(4)),
            lambda: store.approve("-x", "c" * 40, "why", actor="ops", at=_at(4)),
        ):
            _raises(MergegateError, bad)
        assert store.approvals() == [first, other]
