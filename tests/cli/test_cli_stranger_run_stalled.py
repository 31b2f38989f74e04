"""A stranger stalls `mergegate run` (SIGSTOP) mid-check past its lease, lets another command
recover, then continues it (SIGCONT): `main` stays put, but does the run say what became of
the candidate it printed as applying?"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import Scratch, _env, git, watch

_CHECK = """lease_ttl = 2

[[checks]]
name = "gate"
argv = 'touch "$STARTED"; while [ ! -e "$GO" ]; do sleep 0.05; done'
shell = true
"""


def test_cli_stranger_stalled_run_says_it_lost_the_candidate(
    scratch: Scratch, tmp_path: Path
) -> None:
    """SIGSTOP past the TTL, recover, SIGCONT: run says it lost add-docs, then takes it again."""
    started, go = tmp_path / "started", tmp_path / "go"
    (scratch.bare / "mergegate.toml").write_text(_CHECK)
    assert scratch("submit", "add-docs").code == 0
    main_before = git(scratch.bare, "rev-parse", "refs/heads/main")
    env = {**_env(), "STARTED": str(started), "GO": str(go)}
    run = subprocess.Popen(
        [sys.executable, "-m", "mergegate.cli", "--repo", str(scratch.bare), "run", "--once"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with watch(run) as live:
        live.wait_for("check gate")
        os.kill(run.pid, signal.SIGSTOP)
        try:
            # Wait (for a fact, not a time) until the stopped holder's lease reads as down.
            deadline, seen = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                seen = scratch("--json", "list").doc["result"]["integrator"]
                if seen["state"] == "down":
                    break
                time.sleep(0.2)
            assert seen is not None
            assert seen["state"] == "down", json.dumps(seen)
            recovered = scratch("recover")
            assert recovered.code == 0, recovered.stderr
        finally:
            go.touch()
            os.kill(run.pid, signal.SIGCONT)
        code, out, err = live.finish(timeout=60)
    assert started.exists()
    assert code == 0, (out, err)
    # Recovery requeued it (the integrator's stop is not the candidate's fault); the
    # continued run took it again and integrated it once: main moved for it exactly once.
    shown = scratch("--json", "show", "add-docs").doc["result"]
    assert shown["candidate"]["state"] == "integrated", shown
    events = [
        t["event"] for t in scratch("--json", "history", "add-docs").doc["result"]["transitions"]
    ]
    assert events == ["submit", "start_apply", "requeue", "start_apply", "integrate"], events
    merges = git(scratch.bare, "rev-list", "--first-parent", f"{main_before}..refs/heads/main")
    assert len(merges.split()) == 1, merges
    assert scratch("verify").code == 0
    # The stalled run printed "add-docs ...: applying"; it must also say how that ended.
    said = [ln for ln in (out + err).splitlines() if "add-docs" in ln and "lease lost" in ln]
    assert said, out + err
