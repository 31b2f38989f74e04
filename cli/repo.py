"""The few git questions the command line asks itself: where the repository is, what main is.

Everything that changes the repository belongs to ``mergegate.apply``; this
module only reads. Every git failure becomes a RepositoryError here.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import attrs

from mergegate.statemachine import RepositoryError

from .errors import NotARepository

__all__ = ["Repository", "locate"]

_TIMEOUT = 60.0


def _env() -> dict[str, str]:
    # An inherited GIT_DIR or GIT_WORK_TREE would point git at another repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(LC_ALL="C", LANG="C", GIT_TERMINAL_PROMPT="0")
    return env


def _git(where: Path, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=where,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as err:
        if not where.is_dir():
            raise RepositoryError(str(where), "no such directory; check --repo") from err
        raise RepositoryError(str(where), "git was not found; install git or fix PATH") from err
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RepositoryError(str(where), f"cannot run git: {err}") from err
    if done.returncode not in ok:
        first = next((ln for ln in done.stderr.splitlines() if ln.strip()), "no message")
        raise RepositoryError(str(where), f"`git {args[0]}` failed: {first}")
    return done


@attrs.frozen
class Repository:
    """A located repository: its root (work tree, or the bare directory) and common dir."""

    root: Path
    common_dir: Path
    bare: bool

    @property
    def state_dir(self) -> Path:
        """``<git-common-dir>/mergegate``: the default store and the transition log live here."""
        return self.common_dir / "mergegate"

    def resolve_commit(self, name: str) -> str | None:
        """The full sha of the commit ``name`` names, or ``None`` if it names none."""
        done = _git(
            self.root,
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            f"{name}^{{commit}}",
            ok=(0, 1, 128),
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def branch_sha(self, branch: str) -> str | None:
        """The sha ``refs/heads/<branch>`` points at, or ``None`` if the branch is missing."""
        return self.resolve_commit(f"refs/heads/{branch}")

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether commit ``ancestor`` is contained in ``descendant``'s history."""
        done = _git(
            self.root,
            "merge-base",
            "--is-ancestor",
            "--end-of-options",
            ancestor,
            descendant,
            ok=(0, 1, 128),
        )
        return done.returncode == 0


def locate(path: Path) -> Repository:
    """The repository at or above ``path``; raises RepositoryError if there is none."""
    if not path.is_dir():
        raise NotARepository(str(path), "no such directory")
    # One git process answers for a work tree, where operators run most commands;
    # --show-toplevel fails in a bare repository, which then costs a second one.
    done = _git(
        path,
        "rev-parse",
        "--path-format=absolute",
        "--is-bare-repository",
        "--git-common-dir",
        "--show-toplevel",
        ok=(0, 128),
    )
    lines = done.stdout.splitlines()
    if done.returncode == 0 and len(lines) >= 3 and lines[0] == "false":
        return Repository(root=Path(lines[2]), common_dir=Path(lines[1]), bare=False)
    done = _git(
        path,
        "rev-parse",
        "--path-format=absolute",
        "--is-bare-repository",
        "--git-common-dir",
        ok=(0, 128),
    )
    if done.returncode != 0:
        raise NotARepository(str(path), "not a git repository")
    bare_text, common_text = done.stdout.splitlines()[:2]
    common = Path(common_text)
    if bare_text == "true":
        return Repository(root=common, common_dir=common, bare=True)
    top = _git(path, "rev-parse", "--path-format=absolute", "--show-toplevel").stdout.strip()
    return Repository(root=Path(top), common_dir=common, bare=False)
