"""mergegate's core: the lifecycle table, its records, the Engine and the store protocol.

``__all__`` is the public API (docs/python-api.md documents every name in it).
The names imported below as ``X as X`` are mergegate's internals, shared by its
own components (validation helpers, the log format, the Transaction protocol,
the fold): they stay importable for those callers but are not part of the API
and may change without notice. Import them from their module in new code.

This package imports nothing else of mergegate; every other component imports it.
"""

from typing import TYPE_CHECKING, Any

from .actions import Action, Apply, Approve, MarkDone, Remediate, Resume, Show, Sync
from .applier import AlreadyIntegrated, Applier, ApplyResult, Blocked, HeldMain, Integrated
from .calls import Calls as Calls
from .calls import Request
from .engine import Batch, Engine
from .errors import (
    CandidateNotFound,
    ConcurrencyConflict,
    DuplicateCandidate,
    FollowUpNotResolved,
    IdempotencyKeyReused,
    IllegalTransition,
    InvalidInput,
    LeaseHeld,
    MergegateError,
    MoveInFlight,
    OutcomeUnknown,
    RepositoryError,
    StoreError,
    StoreUnavailable,
    TableError,
)
from .feed import Change, ChangeFeed, follow
from .fold import Violation
from .fold import fold as fold
from .fold import verify_log as verify_log
from .followup_slug import SlugRule, follow_up_slug
from .hooks import HookFn, HookLike, Subscription, on_enter, on_event, on_outcome
from .ledger import Acknowledgement as Acknowledgement
from .ledger import Approval as Approval
from .ledger import StoreIdentity as StoreIdentity
from .logfmt import format_logfmt as format_logfmt
from .logfmt import log_outcome as log_outcome
from .machine import LifecycleMachine as LifecycleMachine
from .machine import lifecycle as lifecycle
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
from .records import FollowUpJob as FollowUpJob
from .states import Event, State
from .store import Guide, Hook, Resolver, Store
from .table import TABLE, Effect, Rule, Table
from .validation import SHA_SHOWN as SHA_SHOWN
from .validation import SLUG_MAX as SLUG_MAX
from .validation import cap_text as cap_text
from .validation import check_branch as check_branch
from .validation import check_relpath as check_relpath
from .validation import check_sha as check_sha
from .validation import check_slug as check_slug
from .validation import check_text as check_text
from .validation import short_sha as short_sha
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
    "QueueEntry",
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
