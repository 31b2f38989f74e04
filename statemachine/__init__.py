"""mergegate's core: the lifecycle table, its records, the Engine and the store protocol.

This package imports nothing else of mergegate; every other component imports it.
"""

from .applier import AlreadyIntegrated, Applier, ApplyResult, Blocked, HeldMain, Integrated
from .engine import Batch, Engine
from .errors import (
    CandidateNotFound,
    ConcurrencyConflict,
    DuplicateCandidate,
    FollowUpNotResolved,
    IllegalTransition,
    InvalidInput,
    LeaseHeld,
    MergegateError,
    MoveInFlight,
    RepositoryError,
    StoreError,
)
from .fold import Violation, fold, verify_log
from .followup_slug import follow_up_slug
from .logfmt import format_logfmt, log_outcome
from .machine import LifecycleMachine, lifecycle
from .records import (
    BlockedRecord,
    BlockedReport,
    Candidate,
    CandidateKey,
    CheckResult,
    Evidence,
    FollowUpJob,
    FollowUpState,
    Guidance,
    Lease,
    Occurrence,
    Outcome,
    Reason,
    Transition,
)
from .states import Event, State
from .store import Guide, Hook, Resolver, Store, Transaction
from .table import TABLE, Rule, Table
from .validation import (
    SLUG_MAX,
    cap_text,
    check_branch,
    check_relpath,
    check_sha,
    check_slug,
    check_text,
)

__all__ = [
    "AlreadyIntegrated",
    "Applier",
    "ApplyResult",
    "Blocked",
    "Integrated",
    "SLUG_MAX",
    "TABLE",
    "Batch",
    "BlockedRecord",
    "BlockedReport",
    "Candidate",
    "CandidateKey",
    "CandidateNotFound",
    "CheckResult",
    "ConcurrencyConflict",
    "DuplicateCandidate",
    "Engine",
    "Event",
    "Evidence",
    "FollowUpJob",
    "FollowUpNotResolved",
    "FollowUpState",
    "Guidance",
    "Guide",
    "Hook",
    "IllegalTransition",
    "InvalidInput",
    "Lease",
    "HeldMain",
    "LeaseHeld",
    "LifecycleMachine",
    "MergegateError",
    "Occurrence",
    "Outcome",
    "Reason",
    "MoveInFlight",
    "RepositoryError",
    "Resolver",
    "Rule",
    "State",
    "Store",
    "StoreError",
    "Table",
    "Transaction",
    "Transition",
    "Violation",
    "cap_text",
    "check_branch",
    "check_relpath",
    "check_sha",
    "check_slug",
    "check_text",
    "fold",
    "follow_up_slug",
    "format_logfmt",
    "lifecycle",
    "log_outcome",
    "verify_log",
]
