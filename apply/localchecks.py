"""The local checks of one merge commit: each configured check in turn, in a scratch worktree.

What GitApplier.run_local_checks runs when no CI runner is set (and what the
CLI's local runner runs for it). The checks see the merge through the
``MERGEGATE_*`` variables and never the integrator's git: every inherited
``GIT_*`` variable is dropped. Running one check (its process group, its
timeout, its retries) is ``checks.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

from mergegate.statemachine import CandidateKey, CheckResult

from .built import Built
from .checks import CheckSpec, run_retrying
from .worktree import WorktreePool

__all__ = ["run_local"]


def run_local(
    specs: Sequence[CheckSpec],
    worktrees: WorktreePool,
    environ: Mapping[str, str],
    key: CandidateKey,
    built: Built,
    tick: Callable[[], None],
    tick_every: float,
    started: Callable[[str], None],
) -> tuple[CheckResult, ...]:
    """Run ``specs`` on ``built.commit`` in a worktree of ``worktrees``; stop at the first failure.

    ``environ`` is the environment the checks start from; ``started`` is told
    each check's name once its process runs. ``tick`` is called between checks
    and every ``tick_every`` seconds while one runs; if it raises, the running
    check is killed, the worktree given back, and the exception propagates.
    """
    env = {k: v for k, v in environ.items() if not k.startswith("GIT_")}
    env.update(
        MERGEGATE_SLUG=key.slug,
        MERGEGATE_CANDIDATE_SHA=built.candidate,
        MERGEGATE_MAIN_SHA=built.base,
        MERGEGATE_MERGE_SHA=built.commit,
    )
    results: list[CheckResult] = []
    with worktrees.worktree(built.commit) as path:
        for spec in specs:
            # Told once the check runs: a stop signal let through by the step
            # (``mergegate run``) raised inside Popen would orphan the check.
            told = partial(started, spec.name)
            result = run_retrying(spec, path, env, tick, tick_every, started=told)
            results.append(result)
            if result.failed:
                # Later checks ran against a tree already known to be bad.
                break
            tick()
    return tuple(results)
