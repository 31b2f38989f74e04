"""The integration apply seam on real git.

:class:`GitApplier` implements :class:`mergegate.statemachine.Applier`: it
merges a candidate without touching any checkout, runs the configured checks
in a scratch worktree, and moves ``main`` only under the fence (git's lock on
``main``, with the lease checked while it is held).

``__all__`` is the public API, and this module exports nothing else; the git
runner, ``run_check``, ``remote_main`` and the audit are internals, imported by
mergegate's CLI from their modules.
"""

from .applier import GitApplier
from .audit import RepositoryViolation
from .chain import ChainRun, GiveBack, integrate_chain
from .checks import CheckSpec
from .errors import CheckoutInUse, GitCommandFailed, GitNotFound, MainCheckedOut, RepositoryBusy
from .git import Identity
from .liveness import holder_gone, lease_owner
from .remote import NothingPushed, RemoteUnreachable
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
    "GiveBack",
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
