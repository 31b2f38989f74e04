"""The lease's part of a SQL transaction: who may move ``main``, read, put, dropped, renewed.

An apply holds the lease for its candidate, a chain for its links (no
candidate); the Engine decides when, from the step's flags, and these methods
only write what it decided.
"""

from __future__ import annotations

from datetime import datetime

from mergegate.statemachine import Lease, LeaseHeld

from .rows import LEASE, named
from .txbase import TransactionBase

__all__ = ["LeaseWrites"]

LEASE_BY_NAME = f"SELECT {named(LEASE)} FROM leases WHERE name = ?"
_PUT_LEASE = (
    f"INSERT INTO leases ({', '.join(LEASE)}) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
    "candidate_id = excluded.candidate_id, acquired_at = excluded.acquired_at, "
    "expires_at = excluded.expires_at"
)
_DROP_LEASE = "DELETE FROM leases WHERE name = ? AND candidate_id = ?"


class LeaseWrites(TransactionBase):
    """The lease's methods of the :class:`~mergegate.statemachine.Transaction`."""

    def lease(self, name: str) -> Lease | None:
        # The lease row may not exist yet, so a row lock could not stop two
        # integrators from both seeing it free; the dialect's lock can.
        if self._d.lock_sql:
            self._lock("lease", name)
        row = self._one(LEASE_BY_NAME, (name,))
        return None if row is None else self._map.lease(row)

    def put_lease(self, lease: Lease) -> None:
        self.execute(
            _PUT_LEASE,
            (
                lease.name,
                self._d.text_in(lease.owner),
                lease.candidate_id,
                self._d.time_in(lease.acquired_at),
                self._d.time_in(lease.expires_at),
            ),
        )

    def drop_lease(self, name: str, candidate_id: int) -> None:
        self.execute(_DROP_LEASE, (name, candidate_id))

    def drop_chain_lease(self, name: str, owner: str) -> None:
        self.execute(
            "DELETE FROM leases WHERE name = ? AND owner = ? AND candidate_id IS NULL",
            (name, self._d.text_in(owner)),
        )

    # A store-level write, in a transaction of its own (SQLStore.renew_lease).
    def renew_lease(self, name: str, owner: str, expires_at: datetime) -> Lease:
        """Push the expiry of ``owner``'s lease; raises LeaseHeld if it lost it."""
        row = self._one(
            f"UPDATE leases SET expires_at = ? WHERE name = ? AND owner = ? "
            f"RETURNING {named(LEASE)}",
            (self._d.time_in(expires_at), name, self._d.text_in(owner)),
        )
        if row is not None:
            return self._map.lease(row)
        held = self._one(LEASE_BY_NAME, (name,))
        if held is None:
            raise LeaseHeld(name, owner, None, lost=True)
        lease = self._map.lease(held)
        raise LeaseHeld(name, lease.owner, lease.expires_at.isoformat())
