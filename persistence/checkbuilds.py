"""The builds a CI ran for merge commits (table ``check_builds``), on any SQL store.

It is the :class:`~mergegate.apply.runners.BuildLog` the CLI gives the check
runner: every trigger is a row written before the build is waited on, every
end updates it. A restarted integrator reads the rows of a merge still open and
waits on those builds; ``show`` and ``history`` read the finished ones to name
a check that failed and then passed (a flaky check), and :meth:`flaky_counts`
counts them per check, so a team can find its flaky checks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from mergegate.statemachine._validation import check_sha, check_slug

from .codec import dump_time, load_time

__all__ = ["BuildRow", "CheckBuilds", "FlakyCheck"]

_COLUMNS = (
    "id, slug, candidate_sha, base_sha, merge_sha, check_name, attempt, runner, build_id, "
    "url, state, exit_code, triggered_at, finished_at"
)


class _Writer(Protocol):
    def execute(self, query: str, params: tuple[Any, ...] = ()) -> None: ...
    def rows(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]: ...


class _SQLStore(Protocol):
    def transaction(self) -> Any: ...


@attrs.frozen
class BuildRow:
    """One row of ``check_builds``: a triggered build and, once known, how it ended."""

    id: int
    slug: str
    candidate_sha: str
    base_sha: str
    merge_sha: str
    check: str
    attempt: int
    runner: str
    build_id: str
    url: str | None
    state: str
    exit_code: int | None
    triggered_at: str
    finished_at: str | None


@attrs.frozen
class FlakyCheck:
    """A check that failed and then passed on one merge commit, with every attempt."""

    slug: str
    merge_sha: str
    check: str
    attempts: tuple[BuildRow, ...]


def _row(raw: Any) -> BuildRow:
    return BuildRow(*raw)


@attrs.define
class CheckBuilds:
    """The build log over ``store`` (a SQLiteStore or PostgresStore)."""

    store: _SQLStore
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def _read(self, query: str, params: tuple[Any, ...]) -> list[BuildRow]:
        with self.store.transaction() as tx:
            return [_row(r) for r in tx.rows(query, params)]

    def add_build(
        self,
        job: Any,
        check: str,
        attempt: int,
        runner: str,
        build_id: str,
        url: str | None,
    ) -> int:
        """Record a triggered build of ``job`` (a CheckJob); return its row id."""
        key = job.key
        check_slug(key.slug)
        for sha in (job.candidate, job.base, job.commit):
            check_sha(sha)
        with self.store.transaction() as tx:
            rows = tx.rows(
                "INSERT INTO check_builds (slug, candidate_sha, base_sha, merge_sha, check_name, "
                "attempt, runner, build_id, url, state, triggered_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?) RETURNING id",
                (
                    key.slug,
                    job.candidate,
                    job.base,
                    job.commit,
                    check,
                    attempt,
                    runner,
                    build_id,
                    url,
                    dump_time(self.clock()),
                ),
            )
        return int(rows[0][0])

    def finish_build(self, row: int, state: str, exit_code: int | None) -> None:
        """Record how the build of ``row`` ended (``state``: a RunState's value)."""
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE check_builds SET state = ?, exit_code = ?, finished_at = ? WHERE id = ?",
                (str(state), exit_code, dump_time(self.clock()), row),
            )

    def open_builds(self, slug: str, candidate_sha: str, base_sha: str) -> list[BuildRow]:
        """Builds of this merge not finished, oldest first (the runner waits on them again)."""
        return self._read(
            f"SELECT {_COLUMNS} FROM check_builds WHERE slug = ? AND candidate_sha = ? "
            "AND base_sha = ? AND state IN ('queued', 'running') ORDER BY id",
            (slug, candidate_sha, base_sha),
        )

    def merge_activity(self, merge_sha: str) -> tuple[bool, datetime | None]:
        """Whether a build of ``merge_sha`` is open, and the newest time one was triggered or ended.

        ``(False, None)`` when none was recorded: what the sweep of stale check
        refs asks (apply/checkrefs.py).
        """
        check_sha(merge_sha)
        with self.store.transaction() as tx:
            rows = tx.rows(
                "SELECT state, triggered_at, finished_at FROM check_builds WHERE merge_sha = ?",
                (merge_sha,),
            )
        is_open = any(state in ("queued", "running") for state, _t, _f in rows)
        times = [
            load_time(t) for _s, triggered, finished in rows for t in (triggered, finished) if t
        ]
        return is_open, max(times, default=None)

    def builds(self, slug: str | None = None) -> list[BuildRow]:
        """Every recorded build (of ``slug``), oldest first."""
        if slug is None:
            return self._read(f"SELECT {_COLUMNS} FROM check_builds ORDER BY id", ())
        return self._read(
            f"SELECT {_COLUMNS} FROM check_builds WHERE slug = ? ORDER BY id", (slug,)
        )

    def flaky(self, slug: str | None = None) -> list[FlakyCheck]:
        """Checks that failed and then passed on the same merge commit, in the order first seen."""
        groups: dict[tuple[str, str, str], list[BuildRow]] = {}
        for row in self.builds(slug):
            groups.setdefault((row.slug, row.merge_sha, row.check), []).append(row)
        found = []
        for (who, merge, check), rows in groups.items():
            states = [r.state for r in rows]
            if "passed" in states and "failed" in states[: states.index("passed")]:
                found.append(FlakyCheck(who, merge, check, tuple(rows)))
        return found

    def flaky_counts(self) -> dict[str, int]:
        """How many merge commits each check was flaky on, by check name."""
        counts: dict[str, int] = {}
        for item in self.flaky():
            counts[item.check] = counts.get(item.check, 0) + 1
        return dict(sorted(counts.items()))
