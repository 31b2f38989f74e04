"""The check runner seam: where a merge commit's checks run, and how mergegate waits on them.

``CheckRunner`` is what the applier calls (``run``: the checks of one
merge commit, to a verdict). Without one, the applier runs its local checks
(subprocesses in a scratch worktree, :mod:`.checks`, with the same bounded
retries); :class:`CIChecks` is the runner that drives any CI
through the three-call protocol :class:`CIRunner` (``trigger``, ``status``,
``cancel``) that docs/buildbot.md writes down; :mod:`.buildbot` is one such CI.

``CIChecks`` owns what every CI shares: the speculative commit is published as
a ref first, every required check is triggered at once, each trigger is
recorded in a :class:`BuildLog` (the store) before it is waited on, so a
restarted integrator waits on the same builds instead of triggering again; a
check that never starts before ``start_timeout``, or never finishes before
``finish_timeout``, is cancelled and comes back timed out; an infrastructure
result (the CI's exception, a lost worker) is triggered again and never
blocks; a failed check is tried again ``retries`` times, each retry logged,
and one that failed and then passed comes back :attr:`CheckResult.flaky`.
When ``tick`` raises (the link was thrown away, the candidate withdrawn or
superseded, the integrator stopped), every build still running is cancelled.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from mergegate.statemachine import (
    CandidateKey,
    CheckAttempt,
    CheckResult,
    InvalidInput,
    MergegateError,
)

__all__ = [
    "BuildLog",
    "CIChecks",
    "CIRunner",
    "CheckJob",
    "CheckPolicy",
    "CheckRunner",
    "LocalChecks",
    "RunState",
    "RunStatus",
    "StoredBuild",
]

_LOG = logging.getLogger("mergegate.transitions.checks")


@attrs.frozen
class CheckJob:
    """One merge commit to check: ``commit`` merges ``candidate`` onto ``base`` for ``key``."""

    key: CandidateKey
    base: str
    candidate: str
    commit: str
    #: Pushes ``commit`` where the CI can fetch it; returns the ref (``refs/mergegate/...``).
    publish: Callable[[], str] = attrs.field(eq=False, repr=False)
    #: Deletes the published ref once the checks reached a verdict (or were cancelled);
    #: ``None``: nothing to delete. Its failure is logged: ``run``'s sweep deletes it later.
    retract: Callable[[str], None] | None = attrs.field(default=None, eq=False, repr=False)


class CheckRunner(Protocol):
    """What the applier calls to check one merge commit (the seam)."""

    def run(
        self, job: CheckJob, tick: Callable[[], None], tick_every: float
    ) -> tuple[CheckResult, ...]:
        """Every check's verdict on ``job.commit``; ``tick`` raising stops (and cancels) them."""
        ...

    def resumable(self, key: CandidateKey, base: str) -> str | None:
        """A merge commit of ``key`` onto ``base`` whose checks are still running, if any."""
        ...


class RunState(enum.StrEnum):
    """Where one triggered build is."""

    QUEUED = "queued"  # triggered, no worker has started it
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    INFRA = "infra"  # the CI failed, not the check: exception, lost worker, cancelled by hand
    CANCELLED = "cancelled"  # cancelled by mergegate
    TIMED_OUT = "timed_out"


@attrs.frozen
class RunStatus:
    """What the CI says of one build; ``url``, ``step`` and ``tail`` once it failed."""

    state: RunState
    url: str | None = None
    exit_code: int | None = None
    step: str | None = None
    tail: str = ""


class CIRunner(Protocol):
    """A CI, in three calls. ``build_id`` is the CI's durable id of one triggered build."""

    name: str

    def trigger(self, job: CheckJob, check: str, ref: str) -> tuple[str, str | None]:
        """Start ``check`` on ``job.commit`` (fetchable as ``ref``); return (build_id, url)."""
        ...

    def status(self, check: str, build_id: str) -> RunStatus:
        """Where the build is now."""
        ...

    def cancel(self, check: str, build_id: str, why: str) -> None:
        """Stop the build whether it is queued or running; no error if it already finished."""
        ...


class StoredBuild(Protocol):
    """One triggered build as the store keeps it (table ``check_builds``)."""

    @property
    def id(self) -> int: ...
    @property
    def merge_sha(self) -> str: ...
    @property
    def check(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def runner(self) -> str: ...
    @property
    def build_id(self) -> str: ...
    @property
    def url(self) -> str | None: ...


class BuildLog(Protocol):
    """Where triggered builds are recorded (the store implements it; see persistence)."""

    def add_build(
        self,
        job: CheckJob,
        check: str,
        attempt: int,
        runner: str,
        build_id: str,
        url: str | None,
    ) -> int:
        """Record a triggered build (state ``queued``); return its row id."""
        ...

    def finish_build(self, row: int, state: str, exit_code: int | None) -> None:
        """Record how the build ended."""
        ...

    def open_builds(self, slug: str, candidate_sha: str, base_sha: str) -> Sequence[StoredBuild]:
        """Every build of this merge (any merge commit of it) not yet finished, oldest first."""
        ...


def _positive(_i: object, a: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not value > 0:
        raise InvalidInput(a.name, value, "give a positive number of seconds")


def _count(_i: object, a: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise InvalidInput(a.name, value, "give an integer from 0 to 10")


@attrs.frozen
class CheckPolicy:
    """One required check on a CI: its name there, deadlines and retries."""

    name: str
    start_timeout: float = attrs.field(default=600.0, validator=_positive)
    finish_timeout: float = attrs.field(default=3600.0, validator=_positive)
    retries: int = attrs.field(default=0, validator=_count)
    #: Re-triggers after an infrastructure result before the check counts as timed out.
    infra_retries: int = attrs.field(default=3, validator=_count)


@attrs.define(eq=False)
class _Pending:
    """One check being waited on."""

    policy: CheckPolicy
    build_id: str
    url: str | None
    row: int | None
    attempt: int
    triggered: float
    started: bool = False
    earlier: list[CheckAttempt] = attrs.Factory(list)
    infra: int = 0


@attrs.define
class CIChecks:
    """A :class:`CheckRunner` that drives a :class:`CIRunner`; see the module docstring."""

    runner: CIRunner
    checks: Sequence[CheckPolicy]
    log: BuildLog | None = None
    #: Seconds between two status calls per build.
    poll: float = attrs.field(default=0.5, validator=_positive)
    clock: Callable[[], float] = time.monotonic

    def resumable(self, key: CandidateKey, base: str) -> str | None:
        if self.log is None:
            return None
        found = [
            b for b in self.log.open_builds(key.slug, key.sha, base) if b.runner == self.runner.name
        ]
        return found[-1].merge_sha if found else None

    def run(
        self, job: CheckJob, tick: Callable[[], None], tick_every: float
    ) -> tuple[CheckResult, ...]:
        resumed: dict[str, StoredBuild] = {}
        if self.log is not None:
            for stored in self.log.open_builds(job.key.slug, job.candidate, job.base):
                if stored.merge_sha == job.commit and stored.runner == self.runner.name:
                    resumed[stored.check] = stored
        ref = job.publish()
        pending: dict[str, _Pending] = {}
        results: dict[str, CheckResult] = {}
        try:
            for policy in self.checks:
                again = resumed.get(policy.name)
                if again is not None:
                    _LOG.info(
                        "check %s: resuming build %s of %s", policy.name, again.build_id, job.key
                    )
                    # The deadlines start again from the restart: the stored
                    # trigger time is another process's clock.
                    pending[policy.name] = _Pending(
                        policy, again.build_id, again.url, again.id, again.attempt, self.clock()
                    )
                else:
                    pending[policy.name] = self._trigger(job, policy, ref, 1)
            while pending:
                for name in list(pending):
                    done = self._poll(job, ref, pending[name])
                    if done is not None:
                        del pending[name]
                        results[name] = done
                        if done.failed:
                            # The verdict is known: the others would only cost CI time.
                            self._cancel_all(pending, "another required check failed")
                            pending.clear()
                            break
                if pending:
                    tick()
                    time.sleep(min(self.poll, tick_every))
        except BaseException:
            self._cancel_all(pending, "the candidate's link was thrown away or the run stopped")
            raise
        finally:
            # Every build fetched the commit as it started, or was cancelled; a
            # resume after a crash publishes the ref again.
            self._retract(job, ref)
        return tuple(results[p.name] for p in self.checks if p.name in results)

    def _retract(self, job: CheckJob, ref: str) -> None:
        if job.retract is None:
            return
        try:
            job.retract(ref)
        except Exception as err:  # a leftover ref costs nothing but space until the sweep
            _LOG.warning("check ref %s of %s not deleted: %s", ref, job.key, err)

    def _trigger(self, job: CheckJob, policy: CheckPolicy, ref: str, attempt: int) -> _Pending:
        build_id, url = self.runner.trigger(job, policy.name, ref)
        row = None
        if self.log is not None:
            row = self.log.add_build(job, policy.name, attempt, self.runner.name, build_id, url)
        _LOG.info(
            "check %s: triggered build %s (attempt %d) of %s",
            policy.name,
            build_id,
            attempt,
            job.key,
        )
        return _Pending(policy, build_id, url, row, attempt, self.clock())

    def _finish(self, item: _Pending, state: RunState, exit_code: int | None) -> None:
        if self.log is not None and item.row is not None:
            self.log.finish_build(item.row, state.value, exit_code)

    def _poll(self, job: CheckJob, ref: str, item: _Pending) -> CheckResult | None:
        policy = item.policy
        try:
            status = self.runner.status(policy.name, item.build_id)
        except MergegateError as err:
            # A CI that does not answer for a moment (a restart, a dropped
            # connection) is waited out; the deadlines still stand.
            _LOG.warning(
                "check %s: status of build %s unknown: %s", policy.name, item.build_id, err
            )
            status = RunStatus(RunState.RUNNING if item.started else RunState.QUEUED, item.url)
        url = status.url or item.url
        now = self.clock()
        if status.state is RunState.QUEUED and not item.started:
            if now - item.triggered > policy.start_timeout:
                return self._timed_out(
                    item, url, f"no worker started it within {policy.start_timeout:g}s"
                )
            return None
        item.started = True
        if status.state in (RunState.QUEUED, RunState.RUNNING):
            if now - item.triggered > policy.finish_timeout:
                return self._timed_out(
                    item, url, f"it did not finish within {policy.finish_timeout:g}s"
                )
            return None
        self._finish(item, status.state, status.exit_code)
        if status.state is RunState.PASSED:
            return CheckResult(policy.name, 0, status.tail, url=url, retried=tuple(item.earlier))
        if status.state in (RunState.INFRA, RunState.CANCELLED, RunState.TIMED_OUT):
            item.infra += 1
            if item.infra > policy.infra_retries:
                return self._timed_out(
                    item,
                    url,
                    f"the CI failed to run it {item.infra} times (exception, lost worker)",
                )
            _LOG.warning(
                "check %s: build %s of %s ended in an infrastructure result; triggering again",
                policy.name,
                item.build_id,
                job.key,
            )
            self._replace(job, ref, item, item.attempt + 1)
            return None
        failed = CheckResult(
            policy.name,
            status.exit_code,
            status.tail,
            url=url,
            step=status.step,
            retried=tuple(item.earlier),
        )
        if len(item.earlier) < policy.retries:
            _LOG.warning(
                "check %s failed on %s (build %s); retry %d of %d",
                policy.name,
                job.key,
                url or item.build_id,
                len(item.earlier) + 1,
                policy.retries,
            )
            item.earlier.append(CheckAttempt(status.exit_code, status.tail, url))
            self._replace(job, ref, item, item.attempt + 1)
            return None
        return failed

    def _replace(self, job: CheckJob, ref: str, item: _Pending, attempt: int) -> None:
        fresh = self._trigger(job, item.policy, ref, attempt)
        item.build_id, item.url, item.row, item.attempt = (
            fresh.build_id,
            fresh.url,
            fresh.row,
            attempt,
        )
        item.triggered, item.started = fresh.triggered, False

    def _timed_out(self, item: _Pending, url: str | None, why: str) -> CheckResult:
        self._cancel(item, f"mergegate: {why}", RunState.TIMED_OUT)
        tail = f"[mergegate: builder {item.policy.name!r}: {why}; cancelled]"
        return CheckResult(
            item.policy.name, None, tail, timed_out=True, url=url, retried=tuple(item.earlier)
        )

    def _cancel(self, item: _Pending, why: str, state: RunState = RunState.CANCELLED) -> None:
        try:
            self.runner.cancel(item.policy.name, item.build_id, why)
        except Exception as err:
            _LOG.warning(
                "check %s: cancelling build %s failed: %s", item.policy.name, item.build_id, err
            )
        self._finish(item, state, None)

    def _cancel_all(self, pending: dict[str, _Pending], why: str) -> None:
        for item in pending.values():
            self._cancel(item, f"mergegate: {why}")


@attrs.define
class LocalChecks:
    """The local checks as a :class:`CheckRunner`: ``local`` runs them; retried ones are logged.

    A check that was retried leaves one row per run in ``log`` (runner
    ``local``), so a flaky local check is shown and counted like a CI's.
    """

    local: Callable[[CheckJob, Callable[[], None], float], tuple[CheckResult, ...]]
    log: BuildLog | None = None

    def resumable(self, key: CandidateKey, base: str) -> str | None:
        return None

    def run(
        self, job: CheckJob, tick: Callable[[], None], tick_every: float
    ) -> tuple[CheckResult, ...]:
        results = self.local(job, tick, tick_every)
        if self.log is not None:
            for result in results:
                if not result.retried:
                    continue
                runs = [(a.exit_code, RunState.FAILED) for a in result.retried]
                final = RunState.FAILED if result.failed else RunState.PASSED
                runs.append((result.exit_code, final))
                for attempt, (code, state) in enumerate(runs, 1):
                    row = self.log.add_build(job, result.name, attempt, "local", "local", None)
                    self.log.finish_build(row, state.value, code)
        return results
