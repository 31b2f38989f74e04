"""Whether the read fast path may answer: what the session checks before a read.

The repository is located as ``repo.locate`` locates it, the configuration must
be the defaults (``config.load_config``) and the actor must pass the session's
check (cli/session.py). Anything else raises :class:`StepAside`, the fast path's
one way of saying that click's path answers this call.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["StepAside", "check_actor", "check_defaults", "locate"]

_GIT_TIMEOUT = 60.0
_MAX_CONFIG_BYTES = 1 << 20


class StepAside(Exception):
    """This call is not one the fast path is sure of: click's path answers it."""


def locate(path: Path) -> tuple[Path, Path]:
    """The repository's root and git common dir, asked of git as ``repo.locate`` asks."""
    if not path.is_dir():
        raise StepAside
    common = ("rev-parse", "--path-format=absolute", "--is-bare-repository", "--git-common-dir")
    done = _git(path, *common, "--show-toplevel")
    lines = done.stdout.splitlines()
    if done.returncode == 0 and len(lines) >= 3 and lines[0] == "false":
        return Path(lines[2]), Path(lines[1])
    # --show-toplevel fails in a bare repository: ask again without it, as locate does.
    done = _git(path, *common)
    lines = done.stdout.splitlines()
    if done.returncode != 0 or len(lines) < 2 or lines[0] != "true":
        raise StepAside  # no repository, or a work tree git answered oddly: the general path
    return Path(lines[1]), Path(lines[1])


def _git(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # An inherited GIT_DIR or GIT_WORK_TREE would point git at another repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(LC_ALL="C", LANG="C", GIT_TERMINAL_PROMPT="0")
    return subprocess.run(
        ["git", *args],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=_GIT_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def check_defaults(root: Path) -> None:
    """Step aside unless the repository has no configuration and its defaults pass."""
    if (root / "mergegate.toml").is_file():
        raise StepAside
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        import tomllib  # noqa: PLC0415  (only with a pyproject.toml, as load_config)

        data = pyproject.read_bytes()
        if len(data) > _MAX_CONFIG_BYTES:
            raise StepAside
        section = tomllib.loads(data.decode("utf-8")).get("tool", {})
        if not isinstance(section, dict) or section.get("mergegate") is not None:
            raise StepAside
    # The defaults' one check that depends on the disk: todos and the roadmap
    # resolve inside the repository (followups/contain.py, check_inside).
    top = root.resolve()
    for default in (root / "todos", root / "todos" / "roadmap.yaml"):
        resolved = default.resolve()
        if resolved != top and top not in resolved.parents:
            raise StepAside


def check_actor() -> None:
    """The actor (``MERGEGATE_ACTOR``, else ``cli:<user>``) must pass the session's check."""
    # click reads an empty variable as unset (session.default_actor then names one).
    actor = os.environ.get("MERGEGATE_ACTOR") or f"cli:{_user()}"
    if not actor.isascii() or not actor.strip() or "\n" in actor:
        raise StepAside


def _user() -> str:
    """``getpass.getuser()``, without importing getpass (termios)."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if os.environ.get(name):
            return os.environ[name]
    import pwd  # noqa: PLC0415

    return pwd.getpwuid(os.getuid())[0]
