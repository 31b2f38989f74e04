"""The orchestrator example runs as a user would run it: a real process on real repositories,
on SQLite and PostgreSQL, with two integrators, as threads and as asyncio tasks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orchestrator.py"
SHA12 = "[0-9a-f]{12}"
SLUGS = ("timeout-30", "add-retries")


def run_example(scratch: Path, *args: str) -> list[str]:
    """Run the example; return its stdout lines after checking it exited cleanly."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(scratch), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done.stdout.splitlines()


def check_run(lines: list[str], scratch: Path) -> None:
    """Both candidates land once; the blocked one's actions were followed in order."""
    done = [
        m[1] for line in lines if (m := re.fullmatch(f"DONE (\\S+): integrated at {SHA12}", line))
    ]
    assert sorted(done) == sorted(SLUGS), lines
    codes = [line for line in lines if line.startswith("INTEGRATION_BLOCKED")]
    assert len(codes) == 1, lines
    blocked = codes[0].split()[-1]
    assert blocked == done[-1], lines
    followed = [line.removeprefix("  follow: ") for line in lines if line.startswith("  follow: ")]
    # The follow-up may still be queued when the remediator reads the guidance: then sync first.
    assert followed in (
        ["remediate", "done", "resume", "apply"],
        ["sync", "remediate", "done", "resume", "apply"],
    ), lines
    assert any(re.fullmatch(f"RESUMED {blocked} at {SHA12}", line) for line in lines), lines
    assert lines[-1] in (
        r"main: 'timeout = 30\nretries = 3'",
        r"main: 'timeout = 10\nretries = 3'",
    ), lines
    follow_ups = list((scratch / "todos").glob(f"{blocked}-integration-blocked-*"))
    assert len(follow_ups) == 1, follow_ups
    assert "status: done" in (follow_ups[0] / "state.yaml").read_text()


def test_the_orchestrator_handles_a_conflict_end_to_end(tmp_path: Path) -> None:
    """The default run (one integrator, SQLite): both land, one after following its actions."""
    lines = run_example(tmp_path / "run")
    check_run(lines, tmp_path / "run")
    assert lines[0] == "DONE timeout-30: integrated at " + lines[0].rsplit(" ", 1)[-1]


@pytest.mark.parametrize("mode", [[], ["--asyncio"]], ids=["threads", "asyncio"])
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_integrators_on_each_store(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str, mode: list[str]
) -> None:
    """Two integrators and a remediator, waiting on the change feed, on SQLite and PostgreSQL."""
    args = ["--workers", "2", *mode]
    if backend == "postgres":
        server = request.getfixturevalue("pg_server")
        schema = request.getfixturevalue("pg_schema")
        args += ["--store", f"{server}?schema={schema}"]
    lines = run_example(tmp_path / "run", *args)
    check_run(lines, tmp_path / "run")
