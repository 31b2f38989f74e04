"""The integration apply seam on real git.

:class:`GitApplier` implements :class:`mergegate.statemachine.Applier`: it
merges a candidate without touching any checkout, runs the configured checks
in a scratch worktree, and moves ``main`` only under the fence (git's lock on
``main``, with the lease checked while it is held).
"""

from .applier import NULL_SHA, GitApplier
from .audit import RepositoryViolation, repository_violations
from .chain import ChainRun, integrate_chain
from .checks import CheckSpec, run_check
from .errors import GitCommandFailed, GitNotFound, MainCheckedOut
from .git import Git, GitOutput, Identity
from .liveness import holder_gone, lease_owner
from .plumbing import remote_main
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
    "NULL_SHA",
    "AmbiguousSha",
    "ChainRun",
    "BranchNotFound",
    "CheckSpec",
    "Git",
    "GitApplier",
    "GitCommandFailed",
    "GitNotFound",
    "GitOutput",
    "Identity",
    "MainCheckedOut",
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
    "RepositoryViolation",
    "repository_violations",
    "remote_main",
    "run_check",
]
