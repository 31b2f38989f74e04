"""The README's install, on a fresh virtual environment: `pip install <clone>`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, check=False, timeout=600
    )
    assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.slow
def test_pip_install_from_a_clone_gives_a_working_command(tmp_path: Path) -> None:
    """A clone installs with plain pip into a new venv, and its `mergegate` runs from elsewhere."""
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git clone (an unpacked sdist?); the install needs one")
    clone = tmp_path / "clone"
    _run("git", "clone", "-q", ROOT, clone, cwd=tmp_path)
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", clone, cwd=tmp_path)
    # From a folder that is not the clone, so nothing is imported from the source tree.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = _run(venv / "bin" / "mergegate", "--version", cwd=elsewhere)
    assert version.startswith("mergegate ")
    # A command past --version: the installed package finds its own modules.
    drawn = _run(venv / "bin" / "mergegate", "diagram", cwd=elsewhere)
    assert "pending --> applying" in drawn
    # The status page's script and style are package data: `serve` reads them from the package.
    asset = _run(
        venv / "bin" / "python",
        "-c",
        "from importlib import resources; "
        "print(resources.files('mergegate.cli').joinpath('web/status.js').read_text()[:40])",
        cwd=elsewhere,
    )
    assert "mergegate status page" in asset
