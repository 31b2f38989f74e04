"""The check runner an apply uses: Buildbot when ``[buildbot]`` is configured, else local.

Both record into the store's ``check_builds`` table: a CI's every build (so a
restarted integrator resumes waiting on them), the local checks' retried runs
(so a flaky local check is counted like a CI's).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .ciconfig import read_auth
from .errors import ConfigError

if TYPE_CHECKING:
    from mergegate.apply import GitApplier
    from mergegate.apply.runners import CheckJob, CheckRunner
    from mergegate.statemachine import CheckResult, Store

    from .config import Config

__all__ = ["cancel_open_builds", "check_runner", "prune_stale_check_refs"]


def _local(
    applier: GitApplier,
) -> Callable[[CheckJob, Callable[[], None], float], tuple[CheckResult, ...]]:
    from mergegate.apply.built import Built  # noqa: PLC0415

    def run(job: CheckJob, tick: Callable[[], None], every: float) -> tuple[CheckResult, ...]:
        built = Built(job.base, job.candidate, job.commit)
        return applier.run_local_checks(job.key, built, tick, every)

    return run


def check_runner(config: Config, applier: GitApplier, store: Store) -> CheckRunner:
    """The runner for ``config``; raises ConfigError when Buildbot has no remote to fetch from."""
    from mergegate.apply.buildbot import BuildbotRunner  # noqa: PLC0415
    from mergegate.apply.runners import CheckPolicy, CIChecks, LocalChecks  # noqa: PLC0415
    from mergegate.persistence.checkbuilds import CheckBuilds  # noqa: PLC0415

    log = CheckBuilds(store)
    bb = config.buildbot
    if bb is None:
        return LocalChecks(_local(applier), log)
    where = config.source or str(config.repo)
    if config.remote is None:
        raise ConfigError(
            where, "buildbot", "needs `remote`: the builds fetch the merge commits from it"
        )
    repository = bb.repository
    if repository is None:
        repository = applier.git.run("remote", "get-url", "--end-of-options", config.remote).text
    runner = BuildbotRunner(bb.url, repository, bb.scheduler, auth=read_auth(bb))
    policies = [
        CheckPolicy(b.name, b.start_timeout, b.finish_timeout, b.retries) for b in bb.builders
    ]
    return CIChecks(runner, policies, log, poll=bb.poll)


def cancel_open_builds(config: Config, store: Store, slug: str, why: str) -> list[str]:
    """Cancel every build still open for ``slug`` (it was withdrawn or superseded).

    Returns a line per build that could not be cancelled (the CI unreachable);
    such a build only costs CI time: no result of it is ever read again.
    """
    bb = config.buildbot
    from mergegate.persistence.checkbuilds import CheckBuilds  # noqa: PLC0415

    log = CheckBuilds(store)
    open_rows = [r for r in log.builds(slug) if r.state in ("queued", "running")]
    if bb is None or not open_rows:
        return []
    from mergegate.apply.buildbot import BuildbotError, BuildbotRunner  # noqa: PLC0415

    runner = BuildbotRunner(bb.url, bb.repository or "", bb.scheduler, auth=read_auth(bb))
    problems = []
    for row in open_rows:
        try:
            runner.cancel(row.check, row.build_id, f"mergegate: {why}")
        except BuildbotError as err:
            problems.append(f"build {row.build_id} of {row.check} not cancelled: {err}")
            continue
        log.finish_build(row.id, "cancelled", None)
    return problems


def prune_stale_check_refs(config: Config, applier: GitApplier, store: Store) -> list[str]:
    """Delete the check refs on the remote that nobody can still need; return them.

    ``run`` calls it as it starts: an integrator killed while checks ran left
    its ``refs/mergegate/checks/*`` behind (apply/checkrefs.py says which
    are stale). Only with ``[buildbot]``: nothing else publishes such refs.
    """
    if config.buildbot is None or config.remote is None:
        return []
    from mergegate.apply.checkrefs import prune_check_refs  # noqa: PLC0415
    from mergegate.persistence.checkbuilds import CheckBuilds  # noqa: PLC0415

    return prune_check_refs(
        applier.git,
        config.remote,
        CheckBuilds(store).merge_activity,
        datetime.now(UTC),
        timedelta(seconds=config.lease_ttl),
        config.push_timeout,
    )
