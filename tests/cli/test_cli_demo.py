"""The README's main command: ``mergegate demo`` runs the whole flow end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import _env


def test_demo_runs_the_whole_blocked_flow(tmp_path: Path) -> None:
    """The demo blocks one candidate, shows the fix, follows its own NEXT lines to integrated."""
    done = subprocess.run(
        [sys.executable, "-m", "mergegate.cli", "demo", "--dir", str(tmp_path / "d")],
        env={**_env(), "MERGEGATE_DB": str(tmp_path / "real.sqlite3")},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert out.count("applying -> integrated") == 2
    assert "add-docs (add-docs@" in out
    assert "block, applying -> blocked (seq 3): merge_conflict" in out
    assert "[exit 3]" in out
    assert "INTEGRATION_BLOCKED\n" in out
    assert re.search(r"^state\.yaml$", out, re.MULTILINE)
    assert "- slug: new-greeting-integration-blocked-" in out
    assert "event=integration_blocked" in out
    assert "resume_cmd=" in out
    assert "$ git fetch origin && git merge origin/main" in out
    next_lines = re.findall(r"^NEXT: (.*)$", out.split("[exit 3]")[0], re.MULTILINE)
    assert next_lines[0] == "mergegate remediate new-greeting"
    assert next_lines[-1] == "mergegate apply new-greeting"
    followed = out.split("Follow the guidance")[1]
    for line in next_lines:
        assert f"$ {line}\n" in followed
    assert "[exit 4]" not in out
    assert "resume, remediating -> retry (seq 5)" in out
    assert "ok: 2 candidate(s), 10 log entries, no violations" in out
    assert (tmp_path / "d" / "integration.git" / "mergegate" / "mergegate.sqlite3").is_file()
    assert not (tmp_path / "real.sqlite3").exists()
