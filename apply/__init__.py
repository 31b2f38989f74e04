"""The integration apply seam on real git.

:class:`GitApplier` implements :class:`mergegate.statemachine.Applier`: it
merges a candidate without touching any checkout, runs the configured checks
in a scratch worktree, and moves ``main`` only under the fence (git's lock on
``main``, with the lease checked while it is held).

``__all__`` is the public API; names imported as ``X as X`` (the git runner,
``run_check``, ``NULL_SHA``, ``remote_main``, ``repository_violations``) are
internals shared with mergegate's CLI.
"""

from .applier import NULL_SHA as NULL_SHA
from .applier import GitApplier
from .audit import RepositoryViolation
from .audit import repository_violations as repository_violations
from .chain import ChainRun, integrate_chain
from .checks import CheckSpec
from .checks import run_check as run_check
from .errors import CheckoutInUse, GitCommandFailed, GitNotFound, MainCheckedOut, RepositoryBusy
from .git import Git as Git
from .git import GitOutput as GitOutput
from .git import Identity
from .liveness import holder_gone, lease_owner
from .plumbing import remote_main as remote_main
from .remote import FENCE_REF as FENCE_REF
from .remote import NothingPushed, RemoteUnreachable
from .remote import Remote as Remote
from .resolve import (
    AmbiguousSha,
    BranchNotFound,
    NotACommit,
    NotInBranch,
    ShaNotResolved,
    UnknownSha,
    branch_tip,
    resolve_candidate_sha,
    resolve_sha,
)

__all__ = [
    "AmbiguousSha",
    "ChainRun",
    "BranchNotFound",
    "CheckSpec",
    "CheckoutInUse",
    "GitApplier",
    "GitCommandFailed",
    "GitNotFound",
    "Identity",
    "MainCheckedOut",
    "RepositoryBusy",
    "NotACommit",
    "NotInBranch",
    "ShaNotResolved",
    "UnknownSha",
    "branch_tip",
    "holder_gone",
    "lease_owner",
    "integrate_chain",
    "resolve_candidate_sha",
    "resolve_sha",
    "NothingPushed",
    "RemoteUnreachable",
    "RepositoryViolation",
]
