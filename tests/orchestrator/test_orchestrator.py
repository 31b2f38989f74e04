"""The orchestrator example runs as a user would run it: a real process on real repositories."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "orchestrator.py"
SHA12 = "[0-9a-f]{12}"


def test_the_orchestrator_handles_a_conflict_end_to_end(tmp_path: Path) -> None:
    """Both candidates land: one directly, one after the blocked flow, with its notification."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    facts = [line for line in lines if line.startswith("  fact: ")]
    nexts = [line.removeprefix("  next: ") for line in lines if line.startswith("  next: ")]
    rest = [line for line in lines if not line.startswith("  ")]
    patterns = [
        f"DONE timeout-30: integrated at {SHA12}",
        "INTEGRATION_BLOCKED add-retries",
        f"RESUMED add-retries at {SHA12}",
        f"DONE add-retries: integrated at {SHA12}",
        "notified: add-retries blocked: merge_conflict",
        r"main: 'timeout = 30\\nretries = 3'",
    ]
    assert len(rest) == len(patterns), done.stdout
    for line, pattern in zip(rest, patterns, strict=True):
        assert re.fullmatch(pattern, line), (pattern, line)
    assert re.fullmatch(
        r"  fact: Candidate add-retries \(add-retries@[0-9a-f]+\) is blocked: merge_conflict "
        r"against main [0-9a-f]+\.",
        facts[0],
    )
    assert nexts[0] == "mergegate remediate add-retries"
    assert "mergegate resume add-retries" in nexts
    follow_ups = list((tmp_path / "run" / "todos").glob("add-retries-integration-blocked-*"))
    assert len(follow_ups) == 1
    assert "status: done" in (follow_ups[0] / "state.yaml").read_text()
