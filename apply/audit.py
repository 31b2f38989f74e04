"""The repository half of ``verify``: every merge mergegate made on ``main`` is explained.

mergegate's merge commits carry ``Candidate: <sha>`` in their message. Walking
``main``'s first-parent history, each such merge must belong to an integrated
candidate with that sha, and no candidate sha may be merged twice. An
integrated candidate records the ``main`` it integrated at (``main=<sha>`` on
its ``integrate`` entry); that commit must be in ``main``'s history.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from mergegate.statemachine import Candidate, Event, State, Transition

from .git import Git

__all__ = ["RepositoryViolation", "repository_violations"]

_CANDIDATE = re.compile(r"^Candidate: ([0-9a-f]{40})$", re.MULTILINE)
_MAIN = re.compile(r"^main=([0-9a-f]{40})$")


@attrs.frozen
class RepositoryViolation:
    """One thing on ``main`` the store does not explain; ``commit`` names it."""

    commit: str
    candidate_sha: str | None
    problem: str

    def __str__(self) -> str:
        return f"commit {self.commit}: {self.problem}"


def _merges(git: Git, ref: str) -> list[tuple[str, str]]:
    """``(merge commit, candidate sha)`` of mergegate's merges on ``ref``'s first parents."""
    out = git.run(
        "log", "--first-parent", "-z", "--format=%H%n%B", "--end-of-options", ref, "--"
    ).stdout.decode("utf-8", "replace")
    found = []
    for entry in out.split("\0"):
        commit, _, message = entry.partition("\n")
        shas = _CANDIDATE.findall(message)
        if commit and shas:
            found.append((commit.strip(), shas[-1]))
    return found


def repository_violations(
    git: Git, ref: str, candidates: Iterable[Candidate], log: Iterable[Transition]
) -> list[RepositoryViolation]:
    """What on ``ref`` no integrated candidate explains, oldest merge first.

    Deterministic for identical inputs. Raises RepositoryError if ``ref``
    cannot be read.
    """
    integrated = {c.id: c for c in candidates if c.state is State.INTEGRATED}
    shas = {c.key.sha for c in integrated.values()}
    merges = list(reversed(_merges(git, ref)))
    problems: list[RepositoryViolation] = []
    first: dict[str, str] = {}
    for commit, sha in merges:
        if sha in first:
            problems.append(
                RepositoryViolation(
                    commit, sha, f"merges candidate {sha} again (first merged by {first[sha]})"
                )
            )
            continue
        first[sha] = commit
        if sha not in shas:
            problems.append(
                RepositoryViolation(
                    commit, sha, f"mergegate merge of {sha}, but no integrated candidate has it"
                )
            )
    history = set(git.run("rev-list", "--end-of-options", ref, "--").text.split("\n"))
    for entry in log:
        if entry.event is not Event.INTEGRATE or entry.candidate_id not in integrated:
            continue
        recorded = _MAIN.match(entry.reason or "")
        if recorded is not None and recorded.group(1) not in history:
            key = integrated[entry.candidate_id].key
            problems.append(
                RepositoryViolation(
                    recorded.group(1),
                    key.sha,
                    f"candidate {key.slug} records main {recorded.group(1)}, not in {ref}",
                )
            )
    return problems
