"""Resolve a sha given at the door to the one full commit id it names, through objects only.

``git rev-parse abc1234`` consults ref names before object ids, so a tag or
branch named like an abbreviation silently wins over the commit the caller
meant. Here an abbreviation is matched only against the object database
(``rev-parse --disambiguate``, which never reads a ref), must match exactly one
object, that object must be a commit, and, for a candidate, the commit must be
contained in its branch. Only the full id that comes out is stored, shown and
applied.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from mergegate.statemachine import InvalidInput
from mergegate.statemachine._validation import check_branch, short_sha

from .git import Git
from .plumbing import is_ancestor, lookup

__all__ = [
    "AmbiguousSha",
    "BranchNotFound",
    "NotACommit",
    "NotInBranch",
    "ShaNotResolved",
    "UnknownSha",
    "branch_tip",
    "resolve_candidate_sha",
    "resolve_sha",
]

# git's shortest abbreviation is 4 hex digits; --disambiguate answers nothing below it.
_ABBREV_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
_SHOWN_MATCHES = 5


class ShaNotResolved(InvalidInput):
    """A sha given at the door names no single commit of the branch; nothing was written."""


class UnknownSha(ShaNotResolved):
    """No object's id starts with the given hex digits."""

    def __init__(self, field: str, value: str, repository: str) -> None:
        super().__init__(
            field, value, f"no object in {repository} has this id; check it, or fetch it first"
        )


class AmbiguousSha(ShaNotResolved):
    """The abbreviation is the prefix of more than one object's id."""

    matches: tuple[str, ...]

    def __init__(self, field: str, value: str, matches: tuple[str, ...], shown: str) -> None:
        super().__init__(
            field,
            value,
            f"ambiguous, {len(matches)} objects start with it ({shown}); give more hex digits",
        )
        self.matches = matches


class NotACommit(ShaNotResolved):
    """The id names an object that is not a commit (a tree, a blob or a tag object)."""

    object_id: str
    object_type: str

    def __init__(self, field: str, value: str, object_id: str, object_type: str) -> None:
        super().__init__(
            field, value, f"it names a {object_type} ({object_id}), not a commit; give a commit"
        )
        self.object_id = object_id
        self.object_type = object_type


class NotInBranch(ShaNotResolved):
    """The commit is not contained in the candidate's branch."""

    commit: str
    branch: str
    tip: str

    def __init__(self, field: str, value: str, commit: str, branch: str, tip: str) -> None:
        super().__init__(
            field,
            value,
            f"commit {short_sha(commit)} is not contained in branch {branch!r} "
            f"(at {short_sha(tip)}); "
            "give a commit of that branch, or name the branch it is on",
        )
        self.commit = commit
        self.branch = branch
        self.tip = tip


class BranchNotFound(InvalidInput):
    """``refs/heads/<branch>`` does not exist; nothing was written."""

    branch: str

    def __init__(self, field: str, branch: str, repository: str, remote: str | None = None) -> None:
        where = (
            f"not on remote {remote} and no branch refs/heads/{branch} in {repository}; "
            f"push it to {remote} first"
            if remote is not None
            else f"no branch refs/heads/{branch} in {repository}; create or fetch it"
        )
        super().__init__(field, branch, where)
        self.branch = branch


def resolve_sha(git: Git, value: str, *, field: str = "sha") -> str:
    """The full id of the one commit whose id starts with ``value`` (4 to 64 hex digits).

    Ref names are never consulted, so a tag named like the abbreviation cannot
    change the answer. Raises InvalidInput for text that is not hex, UnknownSha,
    AmbiguousSha or NotACommit; RepositoryError if git fails.
    """
    if not isinstance(value, str) or not _ABBREV_RE.fullmatch(value):
        raise InvalidInput(field, value, "give 4 to 64 hex digits of a commit id")
    # The value is hex only (checked above), so it cannot be read as an option.
    out = git.run("rev-parse", f"--disambiguate={value.lower()}").text
    matches = tuple(sorted(line for line in out.split("\n") if line))
    if not matches:
        raise UnknownSha(field, value, str(git.repo))
    if len(matches) > 1:
        # Types are fetched for the shown few only: a 4-digit prefix in a large
        # repository can match thousands of objects.
        typed = lookup(git, *matches[:_SHOWN_MATCHES])
        shown = ", ".join(f"{m.name} {m.type or m.problem}" for m in typed)
        if len(matches) > _SHOWN_MATCHES:
            shown += f" and {len(matches) - _SHOWN_MATCHES} more"
        raise AmbiguousSha(field, value, matches, shown)
    (only,) = lookup(git, matches[0])
    if only.type != "commit":
        raise NotACommit(field, value, matches[0], only.type or only.problem or "missing")
    return matches[0]


def branch_tip(
    git: Git | str | os.PathLike[str],
    branch: str,
    *,
    field: str = "branch",
    remote: str | None = None,
) -> str:
    """The commit ``branch`` points at, read exactly (no ref-name guessing).

    ``git`` is the repository: its path (a bare or a work tree repository), or
    mergegate's internal runner. This is the sha to resume a candidate at once
    its fix is pushed (``Resume.branch``). With ``remote``, the server's branch
    as last fetched (``refs/remotes/<remote>/<branch>``) wins over
    ``refs/heads/<branch>``. Raises InvalidInput for a name git would refuse,
    BranchNotFound if it is missing, RepositoryError if the path is not a
    repository.
    """
    if not isinstance(git, Git):
        git = Git(Path(git))
    check_branch(branch, field=field)
    refs = [f"refs/heads/{branch}"]
    if remote is not None:
        refs.insert(0, f"refs/remotes/{remote}/{branch}")
    for ref in refs:
        # show-ref --verify reads exactly this ref; rev-parse would also try
        # refs/tags/refs/heads/<branch> and the like when it is missing.
        out = git.run("show-ref", "--verify", "--hash", "--end-of-options", ref, ok=(0, 1, 128))
        if out.returncode == 0 and out.text:
            return out.text
    raise BranchNotFound(field, branch, str(git.repo), remote)


def resolve_candidate_sha(
    git: Git,
    branch: str,
    value: str | None,
    *,
    field: str = "sha",
    branch_field: str = "branch",
    remote: str | None = None,
) -> str:
    """The full id of the candidate commit: ``value`` resolved, or ``branch``'s tip if ``None``.

    The commit must be contained in ``refs/heads/<branch>``. Raises what
    :func:`resolve_sha` and :func:`branch_tip` raise, and NotInBranch.
    """
    if value is not None:
        # The sha is checked first, so a bad sha is reported as such even when
        # the branch is missing too.
        commit = resolve_sha(git, value, field=field)
        tip = branch_tip(git, branch, field=branch_field, remote=remote)
    else:
        commit = tip = branch_tip(git, branch, field=branch_field, remote=remote)
    if commit != tip and not is_ancestor(git, commit, tip):
        raise NotInBranch(field, value or commit, commit, branch, tip)
    return commit
