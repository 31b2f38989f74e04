"""What failed and what fixes it, named from a blocked report's structured evidence.

Only structured fields are read (paths, check names and exit codes, the main
shas tried, the diagnostic, the lease owner), never the free-text detail nor a
time, so the same stored facts always give the same words.
"""

from __future__ import annotations

from collections.abc import Sequence

from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    CheckResult,
    Reason,
)
from mergegate.statemachine._validation import short_sha

from .text import one_line

__all__ = ["CODE_REASONS", "MAX_NAMED", "fix_sentence", "what_failed"]

#: Reasons whose remedy is a change to the code: resume refuses the blocked sha itself.
CODE_REASONS = frozenset({Reason.MERGE_CONFLICT, Reason.CHECKS_FAILED})
#: How many paths or checks a sentence names before "and N more".
MAX_NAMED = 3


def _named(items: Sequence[str]) -> str:
    shown = ", ".join(one_line(i, limit=120) for i in items[:MAX_NAMED])
    rest = len(items) - MAX_NAMED
    return shown if rest <= 0 else f"{shown} and {rest} more"


def _check_words(check: CheckResult) -> str:
    """``name (exit 1)``; a CI's check adds its failed step and its build's URL."""
    facts = ["timed out" if check.timed_out else f"exit {check.exit_code}"]
    if check.step is not None:
        facts.append(f"step {one_line(check.step, limit=60)!r}")
    if check.url is not None:
        facts.append(f"build {one_line(check.url, limit=200)}")
    return f"{check.name} ({', '.join(facts)})"


def what_failed(report: BlockedReport) -> str:
    """One sentence naming what failed: paths, checks, main shas, the diagnostic or the lease."""
    e = report.evidence
    match report.reason:
        case Reason.MERGE_CONFLICT if e.conflicted_paths:
            n = len(e.conflicted_paths)
            return f"What failed: {n} conflicted path(s): {_named(e.conflicted_paths)}."
        case Reason.CHECKS_FAILED | Reason.CHECKS_TIMED_OUT if e.checks:
            failed = [c for c in e.checks if c.failed] or list(e.checks)
            return f"What failed: check(s) {_named([_check_words(c) for c in failed])}."
        case Reason.MAIN_MOVED if e.main_attempts:
            tried = [short_sha(s) for s in e.main_attempts]
            n = len(tried)
            return f"What failed: main moved during each of {n} attempt(s), at {_named(tried)}."
        case Reason.APPLY_INTERRUPTED if e.lease_owner is not None:
            owner = one_line(e.lease_owner, limit=80)
            return f"What failed: the apply by {owner} stopped before it finished."
        case Reason.CONFIG_CHANGED if e.files:
            return (
                f"What failed: the change edits the integrator's configuration "
                f"({_named(e.files)}), which gates every later candidate; no check ran."
            )
    if e.diagnostic is not None:
        return f"What failed: {one_line(e.diagnostic, limit=240)}"
    return f"What failed: {report.reason.value} (no structured evidence was recorded)."


def fix_sentence(reason: Reason, key: CandidateKey, upstream: str | None = None) -> str:
    """What to do before the NEXT lines, for this reason.

    ``upstream`` is the remote's ``main`` as a developer's clone names it
    (``origin/main``) when mergegate integrates into a remote. A developer's
    local ``main`` is then as old as their last pull, and ``git merge main``
    says "Already up to date" against a main that has moved: so the text names
    ``upstream`` and the fetch that brings it (``git fetch origin && git merge
    origin/main``), and the push that lets ``resume`` see the fix (it reads
    the server's branch). Without a remote, ``main`` is the repository's own.
    """
    branch = one_line(key.branch)
    if upstream is not None:
        up = one_line(upstream, limit=120)
        remote = up.partition("/")[0]
        match reason:
            case Reason.MERGE_CONFLICT:
                return (
                    f"Fix: on {branch}, run `git fetch {remote} && git merge {up}` (or rebase "
                    f"onto {up}: a local main may be stale), resolve the conflicts, commit and "
                    f"push {branch} to {remote}; then run the NEXT lines in order (resume "
                    "takes the branch's new tip)."
                )
            case Reason.CHECKS_FAILED:
                return (
                    f"Fix: make the checks pass on {branch} merged with {up} (run "
                    f"`git fetch {remote}` first: a local main may be stale), commit the fix "
                    f"and push {branch} to {remote}; then run the NEXT lines in order (resume "
                    "takes the branch's new tip)."
                )
    match reason:
        case Reason.MERGE_CONFLICT:
            return (
                f"Fix: merge main into {branch} (or rebase it), resolve the conflicts and "
                "commit on the branch; then run the NEXT lines in order (resume takes the "
                "branch's new tip)."
            )
        case Reason.CHECKS_FAILED:
            return (
                f"Fix: make the checks pass on {branch} merged with main and commit the fix "
                "on the branch; then run the NEXT lines in order (resume takes the branch's "
                "new tip)."
            )
        case Reason.MAIN_MOVED:
            return (
                "Fix: find what keeps moving main (another integrator, a direct push) and "
                f"stop it; {branch} needs no change. Then run the NEXT lines in order."
            )
        case Reason.PUSH_REJECTED:
            return (
                "Fix: settle the server's refusal quoted above with whoever runs the server, "
                f"or commit a fix on {branch} if it refused the change itself; then run the "
                "NEXT lines in order."
            )
        case Reason.CHECKS_TIMED_OUT:
            return (
                "Fix: see why the CI named above never started or never finished the build "
                f"(no worker, a stuck step); {branch} may need no change. Then run the NEXT "
                "lines in order."
            )
        case Reason.APPLY_INTERRUPTED:
            return (
                "Fix: check the integrator that held the lease (crash, kill, hang); "
                f"{branch} needs no change. Then run the NEXT lines in order."
            )
        case Reason.CONFIG_CHANGED:
            return (
                "Fix: an operator reads the configuration diff in the evidence and, if it is "
                "right, approves this exact sha, saying why in place of the ...; "
                f"{branch} needs no change. Then run the NEXT lines in order."
            )
        case Reason.PRECONDITION_FAILED:
            return (
                f"Fix: restore what the precondition names (the branch {branch}, its "
                "commit, the repository) so that the branch holds the work; then run the "
                "NEXT lines in order."
            )
    return "Fix: settle the block with the system that raised it; then run the NEXT lines in order."
