"""The refs a CI fetches speculative commits from: ``refs/mergegate/checks/<merge sha>``.

A merge commit is pushed to the remote as such a ref before its builds are
triggered (a ref outside ``refs/heads``, so no branch-triggered job reacts to
it), and is retracted once its checks reached a verdict or were cancelled: the
builds fetched it when they started, and a resume publishes it again.

An integrator killed while checks ran never retracts its ref, so
:func:`stale_check_refs` finds what is left over and :func:`prune_check_refs`
deletes it in one push (``mergegate run`` does it as it starts). A ref is left
over only when nobody can still need it: no build of its merge commit is
open, and its newest build (or, when none was recorded, the merge commit
itself: killed between the push and the trigger) is older than a grace
period. The grace period is what keeps a second integrator's sweep from
deleting a ref in the gap between its push and its first trigger, or between
a failed build and its retry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import attrs

from mergegate.statemachine import InvalidInput

from .errors import GitCommandFailed
from .git import Git

__all__ = ["CHECK_REFS", "CheckRef", "check_ref", "prune_check_refs", "stale_check_refs"]

#: The namespace of speculative commits pushed for a CI.
CHECK_REFS = "refs/mergegate/checks/"

_REF = re.compile(r"refs/mergegate/checks/([0-9a-f]{40}|[0-9a-f]{64})")


@attrs.frozen
class CheckRef:
    """One ``refs/mergegate/checks/<sha>`` on the remote."""

    ref: str
    sha: str


def check_ref(commit: str) -> str:
    """The ref ``commit`` is published as; refuses anything but a full hex object id."""
    ref = CHECK_REFS + commit
    if _REF.fullmatch(ref) is None:
        raise InvalidInput("commit", commit, "give a full hex object id")
    return ref


def publish(git: Git, remote: str, commit: str, timeout: float) -> str:
    """Push ``commit`` to ``remote`` as its check ref and return the ref."""
    ref = check_ref(commit)
    git.run(
        "push",
        "--quiet",
        "--no-verify",
        "--end-of-options",
        remote,
        f"{commit}:{ref}",
        timeout=timeout,
        die_with_parent=True,
    )
    return ref


def retract(git: Git, remote: str, refs: Sequence[str], timeout: float) -> None:
    """Delete ``refs`` (check refs only) from ``remote`` in one push; nothing to do for none."""
    if not refs:
        return
    for ref in refs:
        if _REF.fullmatch(ref) is None:
            raise InvalidInput("ref", ref, f"only refs under {CHECK_REFS} are retracted")
    git.run(
        "push",
        "--quiet",
        "--no-verify",
        "--end-of-options",
        remote,
        *(f":{ref}" for ref in sorted(refs)),
        timeout=timeout,
        die_with_parent=True,
    )


def listed(git: Git, remote: str, timeout: float) -> list[CheckRef]:
    """Every check ref on ``remote`` (one ``ls-remote``), in ref order."""
    out = git.run(
        "ls-remote", "--refs", "--end-of-options", remote, CHECK_REFS + "*", timeout=timeout
    ).text
    found = []
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        match = _REF.fullmatch(ref)
        # Anything else under the namespace is not ours to judge: left alone.
        if match is not None and match.group(1) == sha:
            found.append(CheckRef(ref, sha))
    return sorted(found, key=lambda r: r.ref)


def _committed_at(git: Git, sha: str) -> datetime | None:
    try:
        stamp = git.run("show", "-s", "--format=%cI", sha, "--").text.strip()
    except GitCommandFailed:
        return None  # not here: built by an integrator on another host
    return datetime.fromisoformat(stamp) if stamp else None


#: What the store says of one merge commit's builds: whether one is open, and
#: the newest time one was triggered or finished (``None``: none recorded).
Activity = Callable[[str], tuple[bool, datetime | None]]


def stale_check_refs(
    git: Git, refs: Sequence[CheckRef], activity: Activity, now: datetime, grace: timedelta
) -> list[CheckRef]:
    """The refs nobody can still need (the module docstring says when), in ref order."""
    stale = []
    for item in refs:
        is_open, newest = activity(item.sha)
        if is_open:
            continue
        if newest is None:
            # No build recorded: pushed by an integrator killed before its trigger, or
            # by one about to trigger; the commit's own time tells them apart.
            newest = _committed_at(git, item.sha)
        if newest is not None and now - newest > grace:
            stale.append(item)
    return stale


def prune_check_refs(
    git: Git,
    remote: str,
    activity: Activity,
    now: datetime,
    grace: timedelta,
    timeout: float,
) -> list[str]:
    """Delete the stale check refs on ``remote`` in one push; return the refs deleted."""
    found = listed(git, remote, timeout)
    stale = [r.ref for r in stale_check_refs(git, found, activity, now, grace)]
    retract(git, remote, stale, timeout)
    return stale
