"""The repository half of ``verify``: every first-parent commit of ``main`` is explained.

Since the queue's first integration, each commit on ``main``'s first-parent
history must be one of two things:

- a mergegate merge of exactly one integrated candidate: its message's
  trailer block (the last paragraph, as git parses trailers) names the
  candidate in one ``Candidate: <sha>`` line, its second and last parent is
  that sha (the message alone proves nothing, anyone can write it), an
  integrated candidate has that sha, and no other commit merged it before;
- or a move of ``main`` outside the queue that an operator acknowledged
  (``mergegate acknowledge SHA --why TEXT``, logged in the store).

Anything else is reported: a manual ``git merge --no-ff`` of an unqueued
branch, a fast-forward onto a human merge whose first parent is a side branch
(its commits are on the first-parent history, and the candidates' merges are
then reachable only through a side parent), a plain commit. A commit that only
quotes ``Candidate:`` in its body is not a trailer and is reported as the plain
commit it is. An integrated candidate records the ``main`` it integrated at
(the ``main_sha`` of its ``integrate`` entry); that commit must be on ``main``'s
first-parent history.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

import attrs

from mergegate.statemachine import Candidate, Event, State, Transition

from .git import Git

__all__ = ["RepositoryViolation", "repository_violations"]

_SHA = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
# git parses the trailers itself (the last paragraph's ``Key: value`` block,
# as ``git interpret-trailers --parse`` does): one process for the whole walk.
_FORMAT = "--format=%H %P%n%(trailers:key=Candidate,valueonly,separator=%x20)"


@attrs.frozen
class RepositoryViolation:
    """One thing on ``main`` the store does not explain; ``commit`` names it."""

    commit: str
    candidate_sha: str | None
    problem: str

    def __str__(self) -> str:
        return f"commit {self.commit}: {self.problem}"


@attrs.frozen
class _Commit:
    sha: str
    parents: tuple[str, ...]
    #: The values of its ``Candidate`` trailers, in order.
    candidates: tuple[str, ...]


def _first_parent(git: Git, ref: str, since: str | None) -> list[_Commit]:
    """``ref``'s first-parent commits not reachable from ``since``, oldest first."""
    args = ["log", "--first-parent", "-z", _FORMAT, "--end-of-options", ref]
    if since is not None:
        args.append(f"^{since}")
    out = git.run(*args, "--").stdout.decode("utf-8", "replace")
    found = []
    for entry in out.split("\0"):
        head, _, trailers = entry.partition("\n")
        if not head.split():
            continue
        sha, *parents = head.split()
        found.append(_Commit(sha, tuple(parents), tuple(trailers.split())))
    found.reverse()
    return found


def _start(
    git: Git, log: list[Transition], integrated: dict[int, Candidate], history: set[str]
) -> str | None:
    """Where the walk starts: below the merge of the queue's first integration.

    ``None`` when nothing was integrated into this history yet (nothing to explain).
    """
    entries = sorted(
        (e for e in log if e.event is Event.INTEGRATE and e.candidate_id in integrated),
        key=lambda e: (e.at, e.candidate_id),
    )
    for entry in entries:
        main = entry.main_sha
        if main is None or main not in history:
            continue
        sha = integrated[entry.candidate_id].key.sha
        (commit,) = _first_parent(git, f"{main}^!", None) or (None,)
        if commit is not None and commit.candidates == (sha,) and commit.parents[1:] == (sha,):
            # The queue's first merge: the walk includes it, and stops below it.
            return commit.parents[0]
        # Integrated as already contained: main was this commit before the queue moved it.
        return main
    return None


def repository_violations(
    git: Git,
    ref: str,
    candidates: Iterable[Candidate],
    log: Iterable[Transition],
    acknowledged: Collection[str] = (),
) -> list[RepositoryViolation]:
    """What on ``ref``'s first-parent history neither the queue nor an operator explains.

    ``acknowledged`` holds the commits operators acknowledged as outside
    moves. Oldest commit first; deterministic for identical inputs. Raises
    RepositoryError if ``ref`` cannot be read.
    """
    integrated = {c.id: c for c in candidates if c.state is State.INTEGRATED}
    shas = {c.key.sha for c in integrated.values()}
    entries = list(log)
    history = set(_lines(git, "rev-list", "--end-of-options", ref, "--"))
    start = _start(git, entries, integrated, history)
    # Every first-parent commit is read (mergegate's merges are checked however
    # old), but only those after the queue's first integration must be explained.
    walked = _first_parent(git, ref, None)
    chain = {c.sha for c in walked}
    since = (
        set(_lines(git, "rev-list", "--first-parent", "--end-of-options", ref, f"^{start}", "--"))
        if start is not None
        else set()
    )
    problems: list[RepositoryViolation] = []
    first: dict[str, str] = {}
    known = frozenset(acknowledged)
    for commit in walked:
        if not commit.candidates and commit.sha not in since:
            continue  # before the queue: not the queue's to explain
        problem = _explain(commit, shas, first, known)
        if problem is not None:
            named = commit.candidates[0] if len(commit.candidates) == 1 else None
            problems.append(RepositoryViolation(commit.sha, named, problem))
    for entry in entries:
        if entry.event is not Event.INTEGRATE or entry.candidate_id not in integrated:
            continue
        main = entry.main_sha
        if main is None:
            continue
        key = integrated[entry.candidate_id].key
        if main not in history:
            problems.append(
                RepositoryViolation(
                    main, key.sha, f"candidate {key.slug} records main {main}, not in {ref}"
                )
            )
        elif main not in chain:
            problems.append(
                RepositoryViolation(
                    main,
                    key.sha,
                    f"candidate {key.slug} records main {main}, which {ref} reaches only "
                    "through a side parent: main was moved onto another line of history",
                )
            )
    return problems


def _lines(git: Git, *args: str) -> list[str]:
    return [line for line in git.run(*args).text.split("\n") if line]


def _explain(
    commit: _Commit, shas: set[str], first: dict[str, str], acknowledged: frozenset[str]
) -> str | None:
    """Why ``commit`` is not explained, or ``None`` when it is."""
    named = [s for s in commit.candidates if _SHA.match(s)]
    if not named:
        if commit.sha in acknowledged:
            return None
        kind = (
            f"a merge of {' '.join(p[:12] for p in commit.parents[1:])}"
            if len(commit.parents) > 1
            else "a commit"
        )
        return (
            f"{kind} that moved main outside the queue (no mergegate merge of an integrated "
            "candidate) and no one acknowledged; if it was intended, run "
            f"`mergegate acknowledge {commit.sha} --why TEXT`"
        )
    if len(named) > 1:
        return f"names {len(named)} candidates ({' '.join(named)}); a mergegate merge names one"
    sha = named[0]
    if commit.parents[1:] != (sha,):
        merged = " ".join(commit.parents[1:]) or "nothing"
        return f"says it merges candidate {sha}, but merges {merged}"
    if sha in first:
        return f"merges candidate {sha} again (first merged by {first[sha]})"
    first[sha] = commit.sha
    if sha not in shas:
        return f"mergegate merge of {sha}, but no integrated candidate has it"
    return None
