"""``show`` of a candidate left applying: who holds its lease, and ``recover`` once nobody can."""

from __future__ import annotations

from pathlib import Path

from .conftest import Scratch, spawn, states, typed, watch

# A check that loops while the SLOW variable names an existing file (test_cli_run.py's).
SLOW_CHECK = """lease_ttl = 600
[[checks]]
name = "slow-gate"
argv = 'while [ -n "$SLOW" ] && [ -e "$SLOW" ]; do sleep 0.05; done'
shell = true
"""


def _next_command(text: str) -> str:
    """The command after ``next: `` on show's integrator line."""
    line = next(ln for ln in text.splitlines() if ln.startswith("integrator:"))
    return line.split("next: ", 1)[1]


def test_show_names_a_killed_integrator_and_its_printed_recover_requeues(
    scratch: Scratch, tmp_path: Path
) -> None:
    """kill -9 of run mid-check: show says the holder is gone; its NEXT, run verbatim, requeues."""
    (scratch.bare / "mergegate.toml").write_text(SLOW_CHECK, encoding="utf-8")
    assert scratch("submit", "add-docs").code == 0
    flag = tmp_path / "stall"
    flag.write_text("")
    run = spawn(scratch, "run", env={"SLOW": str(flag)})
    with watch(run) as live:
        live.wait_for("check slow-gate")  # the lease is held, the check runs
        shown = scratch("show", "add-docs")
        assert shown.code == 0, shown.stderr
        assert f":{run.pid}:" in shown.stdout
        assert "lease until" in shown.stdout
        assert "recover" not in shown.stdout, shown.stdout
        live.kill()
    flag.unlink()
    shown = scratch("show", "add-docs")
    assert shown.code == 0, shown.stderr
    assert "is gone (no such process); next: mergegate recover" in shown.stdout, shown.stdout
    done = typed(_next_command(shown.stdout), scratch.bare)
    assert done.returncode == 0, done.stderr
    assert "requeue, applying -> pending" in done.stdout, done.stdout
    assert states(scratch)["add-docs"] == "pending"
    assert "integrator:" not in scratch("show", "add-docs").stdout
