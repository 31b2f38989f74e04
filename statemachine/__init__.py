"""mergegate's core: the lifecycle table, its records, the Engine and the store protocol.

``__all__`` is the public API (docs/python-api.md documents every name in it),
and this module exports nothing else. A store author's API is
:mod:`.extension`. mergegate's own internals (the validation helpers in
``_validation``, the log format in ``_logfmt``, the fold, the ``transitions``
cross-check, the interruption count) live in ``_``-prefixed modules, which its
other components import by path; they may change without notice.

This package imports nothing else of mergegate; every other component imports it.
"""

from typing import TYPE_CHECKING, Any

from ._fold import Violation
from .actions import Action, Apply, Approve, MarkDone, Remediate, Resume, Show, Sync
from .applier import AlreadyIntegrated, Applier, ApplyResult, Blocked, HeldMain, Integrated
from .calls import Request
from .controls import Control, ControlEntry, QueueControls
from .engine import Batch, Engine
from .errors import (
    CandidateNotFound,
    ConcurrencyConflict,
    ControlRefused,
    DuplicateCandidate,
    FollowUpNotResolved,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
    LeaseHeld,
    MergegateError,
    MoveInFlight,
    OutcomeUnknown,
    QueueDraining,
    QueuePaused,
    RepositoryError,
    StoreError,
    StoreUnavailable,
    TableError,
)
from .feed import Change, ChangeFeed, follow
from .followup_slug import SlugRule, follow_up_slug
from .hooks import HookFn, HookLike, Subscription, on_enter, on_event, on_outcome
from .queueview import QueueEntry, RunSummary, next_actionable, queue, run_queue
from .records import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    CheckAttempt,
    CheckResult,
    Evidence,
    FollowUpState,
    Guidance,
    HookFailure,
    Lease,
    Occurrence,
    Outcome,
    Reason,
    Transition,
)
from .states import Event, State
from .store import Guide, Hook, Resolver, Store
from .table import TABLE, Effect, Rule, Table
from .waiting import start_apply_waiting, start_next_waiting, take_over

__all__ = [
    "Action",
    "AlreadyIntegrated",
    "Apply",
    "Applier",
    "Approve",
    "ApplyResult",
    "AsyncEngine",
    "Batch",
    "Blocked",
    "BlockedRecord",
    "BlockedReport",
    "Candidate",
    "CandidateKey",
    "CandidateNotFound",
    "Change",
    "ChangeFeed",
    "CheckAttempt",
    "CheckResult",
    "ConcurrencyConflict",
    "Control",
    "ControlEntry",
    "ControlRefused",
    "DuplicateCandidate",
    "Effect",
    "Engine",
    "Event",
    "Evidence",
    "FollowUpNotResolved",
    "FollowUpState",
    "Guidance",
    "Guide",
    "Hook",
    "HookFailure",
    "HookFn",
    "HookLike",
    "IdempotencyKeyReused",
    "IllegalTransition",
    "Integrated",
    "InvalidInput",
    "Lease",
    "MarkDone",
    "HeldMain",
    "LeaseHeld",
    "MergegateError",
    "Occurrence",
    "Outcome",
    "OutcomeUnknown",
    "QueueControls",
    "QueueDraining",
    "QueueEntry",
    "QueuePaused",
    "Reason",
    "Remediate",
    "MoveInFlight",
    "RepositoryError",
    "Request",
    "Resume",
    "Resolver",
    "Rule",
    "RunSummary",
    "Show",
    "SlugRule",
    "State",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Subscription",
    "Sync",
    "TABLE",
    "Table",
    "TableError",
    "Transition",
    "Violation",
    "follow",
    "follow_up_slug",
    "next_actionable",
    "on_enter",
    "on_event",
    "on_outcome",
    "queue",
    "run_queue",
    "start_apply_waiting",
    "start_next_waiting",
    "take_over",
]

if TYPE_CHECKING:
    from .aio import AsyncEngine
else:

    def __getattr__(name: str) -> Any:
        # The asyncio facade loads asyncio (tens of ms): only for whoever uses it,
        # not for every command that imports this package.
        if name == "AsyncEngine":
            from .aio import AsyncEngine  # noqa: PLC0415

            globals()[name] = AsyncEngine
            return AsyncEngine
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
