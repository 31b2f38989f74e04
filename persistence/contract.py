"""The contract every Store passes, as a test kit: the Store and Transaction API itself.

Subclass :class:`StoreContract` in a pytest module and provide a ``store``
fixture that yields a fresh, empty store; every ``test_*`` method then runs
against it. The cases call :class:`~mergegate.statemachine.extension.Transaction` and
:class:`~mergegate.statemachine.Store` directly, one group per method, so a new
store is judged on the protocol the Engine relies on, not through the Engine.
mergegate runs it against SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .contract_blocked import BlockedContract
from .contract_controls import QueueControlsContract
from .contract_leases import LeasesContract
from .contract_ledger import LedgerContract
from .contract_moves import MovesContract
from .contract_reads import ReadsContract
from .contract_steps import T0, conflict_report

__all__ = ["ManualClock", "StoreContract", "conflict_report"]


class ManualClock:
    """A clock the test moves by hand, so leases and ``--since`` are exact."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or T0

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class StoreContract(
    MovesContract,
    BlockedContract,
    LeasesContract,
    LedgerContract,
    ReadsContract,
    QueueControlsContract,
):
    """Behaviour every store must show; each test gets a fresh ``store`` fixture."""
