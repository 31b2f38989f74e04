"""The extension API: what a third-party store implements, and what the Engine hands it.

A store is :class:`Store`: its read side (:class:`StoreReads`) and its write
side (:class:`StoreWrites`), whose ``transaction()`` yields the narrow
:class:`Transaction` the Engine's one interpreter drives. Each move arrives
with the table's compiled :class:`Step`, whose flags (:data:`STEP_FLAGS`) say
what to write. A store may also offer a one-piece fast path (:class:`Mover`),
accepting a :class:`Move` and answering :class:`Moved`, or declining. The
queue controls (:class:`Control`, :class:`ControlEntry`, :class:`QueueControls`)
are a log the store keeps and reads back: its claim finds no head while paused.
``mergegate.persistence.contract.StoreContract`` is the suite a store passes.
See docs/python-api.md, "Writing a store".
"""

from .controls import Control, ControlEntry, QueueControls
from .ledger import Acknowledgement, Approval, StoreIdentity
from .move import Move, Moved
from .records import FollowUpJob
from .store import Mover, Store, StoreReads, StoreWrites, Transaction
from .table import STEP_FLAGS, Step

__all__ = [
    "STEP_FLAGS",
    "Acknowledgement",
    "Approval",
    "Control",
    "ControlEntry",
    "FollowUpJob",
    "StoreIdentity",
    "Move",
    "Moved",
    "Mover",
    "QueueControls",
    "Step",
    "Store",
    "StoreReads",
    "StoreWrites",
    "Transaction",
]
