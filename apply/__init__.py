"""The integration apply seam on real git.

:class:`GitApplier` implements :class:`mergegate.statemachine.Applier`: it
merges a candidate without touching any checkout, runs the configured checks
in a scratch worktree, and moves ``main`` by compare-and-swap only.

``__all__`` is the public API; names imported as ``X as X`` (the git runner,
``run_check``, ``NULL_SHA``) are internals shared with mergegate's CLI.
"""

from .applier import NULL_SHA as NULL_SHA
from .applier import GitApplier
from .checks import CheckSpec
from .checks import run_check as run_check
from .errors import GitCommandFailed, GitNotFound, MainCheckedOut
from .git import Git as Git
from .git import GitOutput as GitOutput
from .git import Identity
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
    "BranchNotFound",
    "CheckSpec",
    "GitApplier",
    "GitCommandFailed",
    "GitNotFound",
    "Identity",
    "MainCheckedOut",
    "NotACommit",
    "NotInBranch",
    "ShaNotResolved",
    "UnknownSha",
    "branch_tip",
    "resolve_candidate_sha",
    "resolve_sha",
]
