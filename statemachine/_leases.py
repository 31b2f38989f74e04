"""The integration lease: heartbeats, a chain's own lease, and which links joined it."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ._validation import check_text
from .errors import LeaseHeld
from .records import Candidate, Lease

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["chain_links", "heartbeat", "hold_lease", "release_lease"]


def heartbeat(engine: Engine, owner: str) -> None:
    """Renew ``owner``'s lease, or with ``renew_after`` check it while it is fresh.

    A check is a read, a renewal a write with its fsync: a fast apply calls
    the heartbeat three times in as many milliseconds, and only the renewal
    that keeps the lease from expiring needs to be written. The fenced call
    (under git's lock on main) is as safe either way: recovery cannot take
    the lease without that lock, and a lost lease raises LeaseHeld here too.
    """
    if engine.renew_after is not None:
        fresh_until = engine.lease_ttl - engine.renew_after
        now = engine.clock()
        for lease in engine.store.leases():
            mine = lease.name == engine.lease_name and lease.owner == owner
            if mine and lease.expires_at - now > fresh_until:
                return
    engine.renew_lease(owner)


def hold_lease(engine: Engine, owner: str, ttl: timedelta | None) -> Lease:
    """Take the lease for ``owner`` itself, naming no candidate (a chain's lease)."""
    check_text(owner, field="lease owner")
    with engine.store.transaction() as tx:
        held = tx.lease(engine.lease_name)
        if held is not None:
            raise LeaseHeld(engine.lease_name, held.owner, held.expires_at.isoformat())
        now = engine.clock()
        lease = Lease(engine.lease_name, owner, None, now, now + (ttl or engine.lease_ttl))
        tx.put_lease(lease)
    return lease


def release_lease(engine: Engine, owner: str) -> bool:
    """Release ``owner``'s chain lease; say whether it still held it."""
    with engine.store.transaction() as tx:
        held = tx.lease(engine.lease_name)
        if held is None or held.owner != owner or held.candidate_id is not None:
            return False
        tx.drop_chain_lease(engine.lease_name, owner)
    return True


def chain_links(engine: Engine, lease: Lease) -> list[Candidate]:
    """The candidates in a leased state whose last move joined ``lease``, oldest first.

    A link's ``start_apply`` entry names the owner it ran under
    (:attr:`~.records.Transition.lease_owner`); that field, not the note, says
    which chain it belongs to.
    """
    found = []
    for state in sorted(engine.table.leased):
        for candidate in engine.store.candidates(state):
            history = engine.store.history(candidate.id)
            last = history[-1] if history else None
            if last is not None and last.lease_owner == lease.owner:
                found.append(candidate)
    return sorted(found, key=lambda c: c.id)
