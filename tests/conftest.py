"""Shared test configuration: Hypothesis profiles, the PostgreSQL test server, a
throw-away schema on it, and the one ``store`` fixture every suite builds stores with."""

from __future__ import annotations

import gc
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from mergegate.persistence import SQLiteStore
from mergegate.statemachine import Store

# The session's git daemon (tests/gitserver.py), for every suite that needs a real remote.
from .gitserver import git_server  # noqa: F401  (a fixture, used by name)
from .tally import LAST_RUN, TALLY

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """Collect garbage at each test's end, so a leaked connection fails the test that leaked it.

    Without it a connection left open is finalized whenever the collector next runs,
    and its ResourceWarning fails an innocent later test (seen in CI: a psycopg
    connection reported in the setup of an SQLite-only engine test).
    """
    yield
    gc.collect()


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The reachable server's URL; skips (fails under CI=true) when there is none."""
    url = os.environ.get("MERGEGATE_TEST_PG", DEFAULT_PG)
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        reason = f"no PostgreSQL at MERGEGATE_TEST_PG={url}: {first}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    return url


@pytest.fixture
def pg_schema(pg_server: str) -> Iterator[str]:
    """A fresh, empty schema on the test server; dropped with everything in it afterwards."""
    import psycopg
    from psycopg import sql

    name = f"mg_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def pg_url(pg_server: str, pg_schema: str) -> str:
    """A store URL (``--db`` for the CLI) naming ``pg_schema`` on the test server."""
    return f"{pg_server}{'&' if '?' in pg_server else '?'}schema={pg_schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each backend: a SQLite file, and a PostgreSQL schema."""
    opened: Store
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "store.sqlite3")
    else:
        from mergegate.persistence import PostgresStore

        server: str = request.getfixturevalue("pg_server")
        opened = PostgresStore(server, schema=request.getfixturevalue("pg_schema"))
    yield opened
    opened.close()


# Example counts come from these profiles only. A test whose examples cost much
# more than usual takes a fraction of the profile's count through
# ``tests/examples.py``, so HYPOTHESIS_PROFILE still scales it.
settings.register_profile(
    "default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# A default-run test whose slow twin checks the same property with more examples
# (or kills, or rounds): when the twin runs in the same session (CI runs every
# suite), the short one adds no coverage, only minutes, so it is deselected.
# By file: short test (or class) name -> its slow twin; parameter ids must match.
FAST_TWINS: dict[str, dict[str, str]] = {
    "tests/cli/test_cli_fuzz.py": {
        "test_random_arguments_never_trace_and_invalid_input_writes_nothing": (
            "test_random_arguments_thorough"
        ),
    },
    "tests/statemachine/test_model.py": {"TestEngineAgainstModel": "TestEngineAgainstModelLong"},
    "tests/persistence/test_postgres_model.py": {
        "TestEngineAgainstModelOnPostgres": "TestEngineAgainstModelOnPostgresLong",
    },
    "tests/persistence/test_store_agreement.py": {
        "TestSQLiteAndPostgresAgree": "TestSQLiteAndPostgresAgreeLong",
    },
    "tests/apply/test_chain_properties.py": {
        "test_a_chain_integrates_what_a_serial_run_integrates": (
            "test_longer_chains_integrate_what_a_serial_run_integrates"
        ),
    },
    "tests/reliability/test_kills.py": {"test_kills_fast_subset_sqlite": "test_kills_sqlite"},
    "tests/reliability/test_races.py": {
        "test_duplicate_blocked_reports": "test_duplicate_blocked_reports_many",
        "test_concurrent_roadmap_writers": "test_concurrent_roadmap_writers_many",
        "test_resume_races_apply": "test_resume_races_apply_many",
    },
}


def _twin(nodeid: str) -> str | None:
    """The nodeid of ``nodeid``'s slow twin, if it has one."""
    path, _, rest = nodeid.partition("::")
    name, sep, tail = rest.partition("::")
    base, bracket, params = name.partition("[")
    slow = FAST_TWINS.get(path, {}).get(base)
    if slow is None:
        return None
    return f"{path}::{slow}{bracket}{params}{sep}{tail}"


# The files whose tests take longest in CI's slow run (its --durations, 2026-12-07),
# longest first. pytest-xdist's loadfile hands files to its workers in collection
# order, so one of these collected late started late and set the end of the run:
# they go first, and the short files fill the workers up behind them.
LONGEST_FIRST = (
    "tests/reliability/test_kills.py",  # 295 s + 280 s
    "tests/reliability/test_soak.py",  # 162 s + 161 s
    "tests/persistence/test_store_agreement.py",  # 239 s
    "tests/cli/test_cli_fuzz.py",  # 209 s
    "tests/benchmarks/test_harness.py",  # 75 s + 69 s + 63 s
    "tests/reliability/test_remote_kills.py",  # 103 s + 99 s
    "tests/persistence/test_postgres_model.py",  # 190 s
    "tests/reliability/test_races.py",  # 57 s + 42 s + 37 s + ...
    "tests/statemachine/test_model.py",  # 135 s
    "tests/reliability/test_hostile.py",  # 66 s + 32 s
    "tests/apply/test_chain_properties.py",  # 96 s
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect a short test when its slow twin is selected too; put the longest files first."""
    selected = {item.nodeid for item in items}
    twins = [item for item in items if _twin(item.nodeid) in selected]
    if twins:
        config.hook.pytest_deselected(items=twins)
        items[:] = [item for item in items if item not in twins]
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}
    # A stable sort: every other file, and the tests inside each file, keep their order.
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


# -- the reliability figures, added up over the run (and its xdist workers) ----


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the reliability counters of this run; an xdist worker hands its own over instead."""
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and session.config.option.markexpr == (
        "serial"
    ):
        # CI's serial phase (tox.ini) selects nothing when a user names other tests.
        session.exitstatus = pytest.ExitCode.OK
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:
        worker_output["reliability_tally"] = dict(TALLY)
        return
    if TALLY:
        data = {"finished_at": datetime.now(UTC).isoformat(timespec="seconds"), **TALLY}
        LAST_RUN.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """Under pytest-xdist: add a finished worker's counters to the run's."""
    TALLY.update(getattr(node, "workeroutput", {}).get("reliability_tally", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the reliability counters under the test results."""
    if TALLY:
        terminalreporter.section("reliability figures")
        for name in sorted(TALLY):
            terminalreporter.write_line(f"{name:48} {TALLY[name]}")
