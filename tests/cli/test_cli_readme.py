"""The README's "Using it" commands, verbatim, through a shell, in an ordinary clone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import git

README = Path(__file__).resolve().parents[2] / "README.md"


def _using_it() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- using-it:[^>]*-->\n```\n(.*?)```\n", text, re.DOTALL)
    assert found is not None, "README.md lost its using-it block"
    return found.group(1)


def test_readme_using_it_reaches_integrated_in_an_ordinary_clone(tmp_path: Path) -> None:
    """Clone (main checked out), commit on my-feature, run the block: integrated, tree updated."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(origin), str(seed))
    (seed / "README.md").write_text("# project\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "-q", "-m", "Initial commit")
    git(seed, "push", "-q", "origin", "HEAD:main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "switch", "-q", "-c", "my-feature")
    (clone / "feature.txt").write_text("feature\n")
    git(clone, "add", "feature.txt")
    git(clone, "commit", "-q", "-m", "Add the feature")
    git(clone, "switch", "-q", "main")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-e", "-c", _using_it()],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "integrated" in done.stdout
    assert git(clone, "rev-parse", "HEAD") == git(clone, "rev-parse", "refs/heads/main")
    assert git(clone, "rev-parse", "main^2") == git(clone, "rev-parse", "my-feature")
    assert (clone / "feature.txt").read_text() == "feature\n"
    assert git(clone, "status", "--porcelain") == ""
