"""The integration apply seam on real git.

:class:`GitApplier` implements :class:`mergegate.statemachine.Applier`: it
merges a candidate without touching any checkout, runs the configured checks
in a scratch worktree, and moves ``main`` only under the fence (git's lock on
``main``, with the lease checked while it is held).
"""

from .applier import NULL_SHA, GitApplier
from .audit import RepositoryViolation, repository_violations
from .checks import CheckSpec, run_check
from .errors import GitCommandFailed, GitNotFound, MainCheckedOut
from .git import Git, GitOutput, Identity
from .plumbing import remote_main

__all__ = [
    "NULL_SHA",
    "CheckSpec",
    "Git",
    "GitApplier",
    "GitCommandFailed",
    "GitNotFound",
    "GitOutput",
    "Identity",
    "MainCheckedOut",
    "RepositoryViolation",
    "repository_violations",
    "remote_main",
    "run_check",
]
