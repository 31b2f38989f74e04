"""The lease's part of the store contract (:class:`~.contract.StoreContract` runs it).

A lease put in a transaction reads back, replaces its holder when put again,
is dropped only for its own candidate, and is renewed only by its owner.
"""

from __future__ import annotations

from mergegate.statemachine import Event, Lease, LeaseHeld, State, Store

from .contract_steps import LEASE, T0, _at, _key, _move, _raises, _submit

__all__ = ["LeasesContract"]


class LeasesContract:
    """The lease every store keeps."""

    def test_put_lease_then_read_it_back(self, store: Store) -> None:
        """A lease put in a transaction reads back equal, inside it and from the store."""
        c = _move(store, _submit(store, _key()), Event.START_APPLY, State.APPLYING, T0)
        lease = Lease(LEASE, "w1", c.id, T0, _at(30))
        with store.transaction() as tx:
            assert tx.lease(LEASE) is None
            tx.put_lease(lease)
            assert tx.lease(LEASE) == lease
        assert store.leases() == [lease]
        with store.transaction() as tx:
            assert tx.lease(LEASE) == lease
            assert tx.lease("other") is None

    def test_put_lease_replaces_the_holder(self, store: Store) -> None:
        """Putting a lease that exists replaces its owner, candidate and times."""
        with store.transaction() as tx:
            tx.put_lease(Lease(LEASE, "w1", None, T0, _at(30)))
        taken = Lease(LEASE, "w2", None, _at(40), _at(70))
        with store.transaction() as tx:
            tx.put_lease(taken)
        assert store.leases() == [taken]

    def test_drop_lease_only_for_its_candidate(self, store: Store) -> None:
        """drop_lease releases the lease held for that candidate and no other."""
        c = _move(store, _submit(store, _key()), Event.START_APPLY, State.APPLYING, T0)
        lease = Lease(LEASE, "w1", c.id, T0, _at(30))
        with store.transaction() as tx:
            tx.put_lease(lease)
        with store.transaction() as tx:
            tx.drop_lease(LEASE, c.id + 1000)
        assert store.leases() == [lease]
        with store.transaction() as tx:
            tx.drop_lease(LEASE, c.id)
            assert tx.lease(LEASE) is None
        assert store.leases() == []

    def test_renew_lease(self, store: Store) -> None:
        """The owner pushes its expiry; another owner is refused; a lost lease says so."""
        with store.transaction() as tx:
            tx.put_lease(Lease(LEASE, "w1", None, T0, _at(30)))
        renewed = store.renew_lease(LEASE, "w1", _at(90))
        assert renewed == Lease(LEASE, "w1", None, T0, _at(90))
        held = _raises(LeaseHeld, lambda: store.renew_lease(LEASE, "w2", _at(120)))
        assert isinstance(held, LeaseHeld)
        assert (held.owner, held.lost) == ("w1", False)
        lost = _raises(LeaseHeld, lambda: store.renew_lease("gone", "w1", _at(120)))
        assert isinstance(lost, LeaseHeld)
        assert (lost.owner, lost.lost) == ("w1", True)
        assert store.leases() == [renewed]
