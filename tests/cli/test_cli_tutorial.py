"""docs/tutorial.md is run, block by block, as a newcomer would: bash, a scratch home, an
ordinary clone, and the commands the guidance prints rather than ones copied from it."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.md"
INSTALL_MARK = "<!-- tutorial: install -->"
# Printed between blocks, so the output of each block can be told apart.
SEPARATOR = "@@ tutorial block {} @@"


@attrs.frozen
class Block:
    """One ```sh block of the tutorial."""

    number: int
    text: str
    install: bool


def blocks() -> list[Block]:
    """The shell blocks of the tutorial, in order; the one after the mark installs."""
    found = re.finditer(
        r"(?P<mark><!-- tutorial: install -->\n)?```sh\n(?P<body>.*?)```", _text(), re.S
    )
    return [Block(n, m.group("body"), m.group("mark") is not None) for n, m in enumerate(found, 1)]


def _text() -> str:
    return TUTORIAL.read_text(encoding="utf-8")


def _environment(home: Path, path: str) -> dict[str, str]:
    # A scratch HOME, and nothing of the caller's git or mergegate settings: the
    # tutorial must set up everything it needs itself.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "MERGEGATE_", "XDG_")) and k not in ("HOME", "PATH")
    }
    env.update(HOME=str(home), PATH=path, GIT_CONFIG_NOSYSTEM="1", LC_ALL="C", NO_COLOR="1")
    return env


def _run(script: list[Block], home: Path, path: str) -> tuple[dict[int, str], str, int]:
    """Run ``script`` in ONE bash (cd and export carry over), stopping at the first failure."""
    lines = ["set -e"]
    for block in script:
        lines += [f"echo '{SEPARATOR.format(block.number)}'", block.text]
    done = subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=home,
        env=_environment(home, path),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    parts = re.split(r"^@@ tutorial block (\d+) @@\n", done.stdout, flags=re.MULTILINE)
    outputs = {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}
    return outputs, done.stderr, done.returncode


def _shim(folder: Path) -> str:
    """A folder whose ``mergegate`` runs this checkout's CLI, standing in for the install."""
    folder.mkdir()
    shim = folder / "mergegate"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m mergegate.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def _mergegate(home: Path, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["mergegate", *args],
        cwd=home / "greeter",
        env=_environment(home, path),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _without_shas(text: str) -> str:
    return re.sub(r"\b[0-9a-f]{7,64}\b", "<sha>", text)


def _check_story(home: Path, path: str, outputs: dict[int, str], stderr: str, code: int) -> None:
    """The outcome the tutorial promises: add-docs integrated, new-greeting blocked, then
    integrated by following its NEXT lines, and a clean verify."""
    assert "applying -> integrated" in outputs[4], (outputs.get(4), stderr)
    blocked = outputs[5]
    assert "apply exited 3" in blocked, (blocked, stderr)
    assert "applying -> blocked" in blocked
    assert "\nINTEGRATION_BLOCKED\n" in blocked
    # The sample the page shows is the real output, but for the commit ids.
    sample = re.search(r"```text\n(.*?)```", _text(), re.S)
    assert sample is not None
    start = blocked.rindex("\n", 0, blocked.index(": block, applying")) + 1
    printed = blocked[start : blocked.index("apply exited")]
    assert _without_shas(sample.group(1)) == _without_shas(printed)
    assert "merge_conflict" in outputs[6]
    assert "greeting.txt" in outputs[6]
    assert "roadmap.yaml" in outputs[6]
    assert "UU greeting.txt" in outputs[7]
    steps = [ln for ln in blocked.splitlines() if ln.startswith("NEXT: ")]
    assert steps, blocked
    # Step 8 promises that the NEXT lines, followed literally, end integrated.
    assert steps[-1].startswith("NEXT: mergegate apply"), steps
    assert code == 0, stderr
    shown = json.loads(_mergegate(home, path, "--json", "show", "new-greeting").stdout)
    assert shown["result"]["candidate"]["state"] == "integrated"
    final = outputs[max(outputs)]
    verify = _mergegate(home, path, "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "integrated" in final


def test_tutorial_blocks_are_what_the_test_runs() -> None:
    """The tutorial has one install block, first, and the eight steps after it."""
    found = blocks()
    assert [b.install for b in found] == [True] + [False] * (len(found) - 1)
    assert len(found) == 9
    assert INSTALL_MARK in _text()


def test_tutorial_runs_from_a_scratch_home(tmp_path: Path) -> None:
    """The blocks after the install run in order in a scratch HOME and end integrated."""
    home = tmp_path / "home"
    home.mkdir()
    path = _shim(tmp_path / "bin")
    script = [b for b in blocks() if not b.install]
    outputs, stderr, code = _run(script, home, path)
    # Keys are block numbers; block 1 is the install, run by the slow test below.
    _check_story(home, path, {n: outputs.get(n, "") for n in range(2, 10)}, stderr, code)


@pytest.mark.slow
def test_tutorial_runs_with_its_own_install(tmp_path: Path) -> None:
    """The whole tutorial, install block included: pip installs a fresh clone into a venv."""
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git clone (an unpacked sdist?); the install needs one")
    home = tmp_path / "home"
    home.mkdir()
    os_path = os.environ["PATH"]
    script = blocks()
    install = script[0]
    assert install.install
    # SOURCE is the one thing the reader fills in: the address of this repository.
    first = Block(install.number, f"SOURCE={ROOT}\n{install.text}", True)
    outputs, stderr, code = _run([first, *script[1:]], home, os_path)
    assert outputs.get(1, "").startswith("mergegate "), (outputs, stderr)
    path = f"{home / 'mergegate-venv' / 'bin'}{os.pathsep}{os_path}"
    _check_story(home, path, outputs, stderr, code)


# Started before step 8 and stopped after it, around the tutorial's own blocks: an
# integrator up all day, as a team runs it. Stopped only once it integrated the
# candidate (a stop during its check would requeue it), and it must exit 0.
_RUN_UP = """mergegate run --poll 0.1 > ../run.log 2>&1 &
RUN_PID=$!
for i in $(seq 1 100); do grep -q "queue empty" ../run.log && break; sleep 0.1; done
grep -q "queue empty" ../run.log
"""
_RUN_DOWN = """state() {
  mergegate --json show new-greeting |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["result"]["candidate"]["state"])'
}
for i in $(seq 1 300); do [ "$(state)" = integrated ] && break; sleep 0.1; done
kill -TERM "$RUN_PID"
wait "$RUN_PID"
cat ../run.log
"""


def test_tutorial_next_lines_run_verbatim_while_run_is_up(tmp_path: Path) -> None:
    """Step 8's NEXT lines, run verbatim while `mergegate run` is up, succeed and integrate."""
    home = tmp_path / "home"
    home.mkdir()
    path = _shim(tmp_path / "bin")
    steps = [b for b in blocks() if not b.install]
    # Block 8 is step 8, "Follow the NEXT lines" (block 1 is the install).
    before = [b for b in steps if b.number < 8]
    after = [b for b in steps if b.number >= 8]
    up, down = Block(100, _RUN_UP, False), Block(101, _RUN_DOWN, False)
    outputs, stderr, code = _run([*before, up, *after[:1], down, *after[1:]], home, path)
    assert code == 0, (outputs, stderr)
    # Each NEXT line went through beside the integrator: apply answered, it did not race.
    assert "the integrator" in outputs[8], outputs[8]
    assert "new-greeting" in outputs[101], outputs[101]
    assert "integrated" in outputs[101], outputs[101]
    _check_story(home, path, {n: outputs.get(n, "") for n in range(2, 10)}, stderr, code)
