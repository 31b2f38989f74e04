"""[[notify]] with real scripts: the outcome arrives as JSON; failing or hanging never matters."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .conftest import Scratch, git

SCRIPT = """#!/bin/sh
cat > "{out}/$$.json"
"""


def _configure(s: Scratch, body: str) -> None:
    """Write mergegate.toml into the integration repository (the --repo mergegate reads)."""
    (s.bare / "mergegate.toml").write_text(body, encoding="utf-8")


def _script(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def test_notify_receives_integrated_and_blocked_as_json(scratch: Scratch, tmp_path: Path) -> None:
    """The script gets one JSON document per move into integrated and into blocked."""
    out = tmp_path / "seen"
    out.mkdir()
    script = _script(tmp_path, "notify.sh", SCRIPT.format(out=out))
    _configure(scratch, f'[[notify]]\nargv = ["{script}"]\n')
    assert scratch("submit", "add-docs").code == 0
    assert scratch("apply").code == 0
    assert scratch("submit", "new-greeting").code == 0
    assert scratch("apply").code == 3
    docs = sorted(
        (json.loads(p.read_text()) for p in out.iterdir()), key=lambda d: d["candidate"]["seq"]
    )
    assert {(d["notify"], d["candidate"]["slug"]) for d in docs} == {
        ("integrated", "add-docs"),
        ("blocked", "new-greeting"),
    }
    blocked = next(d for d in docs if d["notify"] == "blocked")
    assert blocked["blocked"]["reason"] == "merge_conflict"


def test_failing_and_hanging_notify_do_not_affect_the_move(
    scratch: Scratch, tmp_path: Path
) -> None:
    """A script that exits 1 and one that sleeps past its timeout: apply still integrates."""
    failing = _script(tmp_path, "fail.sh", "#!/bin/sh\nexit 1\n")
    hanging = _script(tmp_path, "hang.sh", "#!/bin/sh\nsleep 60\n")
    _configure(
        scratch,
        f'[[notify]]\nargv = ["{failing}"]\n\n[[notify]]\nargv = ["{hanging}"]\ntimeout = 1\n',
    )
    assert scratch("submit", "add-docs").code == 0
    started = time.monotonic()
    r = scratch("--json", "apply")
    took = time.monotonic() - started
    assert r.code == 0, r.stderr
    assert r.doc["result"]["candidate"]["state"] == "integrated"
    assert took < 30
    assert git(scratch.bare, "merge-base", "--is-ancestor", scratch.shas["add-docs"], "main") == ""
    # The hanging script was waited for up to its timeout, then killed; each failure is a line.
    assert took >= 1
    assert "fail.sh for add-docs: exit code 1" in r.stderr
    assert "hang.sh for add-docs: killed after 1s" in r.stderr


def test_bad_notify_config_is_one_line_and_writes_nothing(scratch: Scratch) -> None:
    """A notify entry with a string argv and no shell is refused at the door with one line."""
    _configure(scratch, '[[notify]]\nargv = "echo hi"\n')
    before = scratch.snapshot()
    r = scratch("submit", "add-docs")
    assert r.code == 2
    assert r.stderr.count("\n") == 1
    assert "notify[0].argv" in r.stderr
    assert scratch.snapshot() == before
