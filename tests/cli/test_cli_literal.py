"""Literal following: the fix is committed on the candidate's branch, then every ``NEXT:`` line
the blocked apply printed is run verbatim through a shell, in order, from the repository's work
tree with the defaults, and the candidate ends ``integrated``. Once per reason code whose remedy
is a fix (to the code or to its surroundings), on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ..gitrepo import GIT_ENV, git

_BIN = str(Path(sys.executable).parent)


def _env(db: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}
    env.update(GIT_ENV)
    env["MERGEGATE_ACTOR"] = "tester"
    # `mergegate` as a person types it: the command on PATH, not `python -m`.
    env["PATH"] = f"{_BIN}{os.pathsep}{env.get('PATH', '')}"
    if db is not None:
        env["MERGEGATE_DB"] = db
    return env


def _sh(work: Path, line: str, db: str | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line],
        cwd=work,
        env=_env(db),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _commit(work: Path, message: str, files: dict[str, str | None]) -> str:
    for name, text in files.items():
        path = work / name
        if text is None:
            git(work, "rm", "-q", "--", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        git(work, "add", "--", name)
    git(work, "commit", "-q", "-m", message)
    return git(work, "rev-parse", "HEAD")


Scenario = Callable[[Path, Path], tuple[str, Callable[[], None]]]


def _conflict(root: Path, work: Path) -> tuple[str, Callable[[], None]]:
    git(work, "checkout", "-q", "-b", "item", "main")
    _commit(work, "Greet the item", {"greeting.txt": "Hello, item.\n"})
    git(work, "checkout", "-q", "main")
    _commit(work, "Greet the world", {"greeting.txt": "Hello, world.\n"})
    git(work, "checkout", "-q", "item")

    def fix() -> None:
        subprocess.run(["git", "merge", "-q", "main"], cwd=work, env=_env(None), check=False)
        _commit(
            work, "Merge main; keep both greetings", {"greeting.txt": "Hello, world and item.\n"}
        )

    return "merge_conflict", fix


def _checks(root: Path, work: Path) -> tuple[str, Callable[[], None]]:
    git(work, "checkout", "-q", "-b", "item", "main")
    _commit(work, "Add the item, with a leftover", {"item.txt": "item\n", "broken.txt": "x\n"})

    def fix() -> None:
        _commit(work, "Drop the leftover", {"broken.txt": None})

    return "checks_failed", fix


def _moving(root: Path, work: Path) -> tuple[str, Callable[[], None]]:
    git(work, "checkout", "-q", "-b", "item", "main")
    _commit(work, "Add the item", {"item.txt": "item\n"})
    marker = root / "keep-moving"
    marker.write_text("on\n", encoding="utf-8")

    def fix() -> None:
        marker.unlink()  # what kept moving main is stopped; the branch needs no change

    return "main_moved", fix


def _rejecting(root: Path, work: Path) -> tuple[str, Callable[[], None]]:
    git(work, "checkout", "-q", "-b", "item", "main")
    _commit(work, "Add the item", {"item.txt": "item\n"})
    marker = root / "refuse-pushes"
    marker.write_text("on\n", encoding="utf-8")

    def fix() -> None:
        marker.unlink()  # the remote's protection is settled

    return "push_rejected", fix


_BASE = 'main_branch = "main"\nmax_main_retries = 1\n'
_CHECK = """
[[checks]]
name = "no-leftovers"
argv = ["sh", "-c", "test ! -e broken.txt"]
timeout = 60
"""


def _mover(root: Path, work: Path) -> str:
    script = root / "move-main.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'[ -e "{root}/keep-moving" ] || exit 0\n'
        f'repo="{work}"\n'
        'tree=$(git -C "$repo" rev-parse "refs/heads/main^{tree}")\n'
        'next=$(git -C "$repo" commit-tree -p refs/heads/main -m moved "$tree")\n'
        'git -C "$repo" update-ref refs/heads/main "$next"\n',
        encoding="utf-8",
    )
    script.chmod(0o755)
    return (
        f'{_BASE}\n[[checks]]\nname = "mover"\nargv = ["sh", {json.dumps(str(script))}]\n'
        "timeout = 60\n"
    )


def _remote(root: Path, work: Path) -> None:
    bare = root / "remote.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\n"
        f'if [ -e "{root}/refuse-pushes" ]; then echo "main is protected" >&2; exit 1; fi\n',
        encoding="utf-8",
    )
    hook.chmod(0o755)
    git(work, "remote", "add", "origin", str(bare))
    git(work, "push", "-q", "origin", "main")


_SCENARIOS: dict[str, Scenario] = {
    "merge_conflict": _conflict,
    "checks_failed": _checks,
    "main_moved": _moving,
    "push_rejected": _rejecting,
}


def _config(reason: str, root: Path, work: Path) -> str:
    if reason == "checks_failed":
        return _BASE + _CHECK
    if reason == "main_moved":
        return _mover(root, work)
    if reason == "push_rejected":
        return _BASE + 'remote = "origin"\n'
    return _BASE


def _follow(root: Path, reason: str, db: str | None) -> None:
    work = root / "repo"
    git(root, "init", "-q", "-b", "main", str(work))
    _commit(work, "Initial commit", {"greeting.txt": "Hello.\n", ".gitignore": "todos/\n"})
    if reason == "push_rejected":
        _remote(root, work)
    (work / "mergegate.toml").write_text(_config(reason, root, work), encoding="utf-8")
    expected, fix = _SCENARIOS[reason](root, work)
    assert expected == reason
    for line in ("mergegate init", "mergegate submit item"):
        done = _sh(work, line, db)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
    blocked = _sh(work, "mergegate apply", db)
    assert blocked.returncode == 3, (blocked.stdout, blocked.stderr)
    assert f"blocked: {reason}" in blocked.stdout
    lines = [ln[len("NEXT: ") :] for ln in blocked.stdout.splitlines() if ln.startswith("NEXT: ")]
    assert lines[-1] == "mergegate apply item", lines
    fix()
    for line in lines:
        done = _sh(work, line, db)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
    shown = _sh(work, "mergegate show item --json", db)
    doc = json.loads(shown.stdout)
    assert doc["result"]["candidate"]["state"] == "integrated", shown.stdout
    main = git(work, "rev-parse", "refs/heads/main")
    tip = git(work, "rev-parse", "refs/heads/item")
    assert git(work, "merge-base", "--is-ancestor", tip, main) == ""
    if reason in ("merge_conflict", "checks_failed"):
        # The fix itself was integrated: resume took the branch's new tip.
        assert doc["result"]["candidate"]["sha"] == tip


@pytest.mark.parametrize(
    "reason",
    # About 5 s each: the default run keeps one, CI (slow) runs them all.
    [r if r == "merge_conflict" else pytest.param(r, marks=pytest.mark.slow) for r in _SCENARIOS],
)
def test_literal_following_sqlite(tmp_path: Path, reason: str) -> None:
    """Fix on the branch, then every NEXT line verbatim: the candidate is integrated (SQLite)."""
    _follow(tmp_path, reason, None)


@pytest.mark.slow
@pytest.mark.parametrize("reason", sorted(_SCENARIOS))
def test_literal_following_postgres(tmp_path: Path, reason: str, pg_url: str) -> None:
    """Fix on the branch, then every NEXT line verbatim: the candidate integrates (PostgreSQL)."""
    _follow(tmp_path, reason, pg_url)


def test_quoted_lines_are_complete_commands(tmp_path: Path) -> None:
    """Every NEXT line parses as a complete shell command starting with `mergegate`."""
    work = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    _commit(work, "Initial commit", {"greeting.txt": "Hello.\n", ".gitignore": "todos/\n"})
    (work / "mergegate.toml").write_text(_BASE, encoding="utf-8")
    _conflict(tmp_path, work)
    for line in ("mergegate init", "mergegate submit item"):
        assert _sh(work, line, None).returncode == 0
    out = _sh(work, "mergegate apply", None).stdout
    lines = [ln[len("NEXT: ") :] for ln in out.splitlines() if ln.startswith("NEXT: ")]
    assert [shlex.split(ln)[:2] for ln in lines] == [
        ["mergegate", "remediate"],
        ["mergegate", "followups"],
        ["mergegate", "resume"],
        ["mergegate", "apply"],
    ]


def _run_next(work: Path, printed: str, db: str | None) -> None:
    lines = [ln[len("NEXT: ") :] for ln in printed.splitlines() if ln.startswith("NEXT: ")]
    assert lines[-1] == "mergegate apply item", printed
    for line in lines:
        done = _sh(work, line, db)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
    doc = json.loads(_sh(work, "mergegate show item --json", db).stdout)
    assert doc["result"]["candidate"]["state"] == "integrated"


def _plain_item(root: Path, config: str, db: str | None) -> Path:
    work = root / "repo"
    git(root, "init", "-q", "-b", "main", str(work))
    _commit(work, "Initial commit", {"greeting.txt": "Hello.\n", ".gitignore": "todos/\n"})
    (work / "mergegate.toml").write_text(config, encoding="utf-8")
    git(work, "checkout", "-q", "-b", "item", "main")
    _commit(work, "Add the item", {"item.txt": "item\n"})
    for line in ("mergegate init", "mergegate submit item"):
        assert _sh(work, line, db).returncode == 0
    return work


def _db(request: pytest.FixtureRequest, backend: str) -> str | None:
    """``None`` (the default SQLite store) or a PostgreSQL URL with a schema of its own."""
    return None if backend == "sqlite" else str(request.getfixturevalue("pg_url"))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_literal_following_precondition_failed(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The branch ref vanished: restore it, then the NEXT lines verbatim integrate the item."""
    db = _db(request, backend)
    work = _plain_item(tmp_path, _BASE, db)
    tip = git(work, "rev-parse", "HEAD")
    git(work, "checkout", "-q", "--detach")
    git(work, "branch", "-D", "item")
    blocked = _sh(work, "mergegate apply", db)
    assert blocked.returncode == 3, blocked.stderr
    assert "blocked: precondition_failed" in blocked.stdout
    assert "What failed: branch refs/heads/item does not exist" in blocked.stdout
    git(work, "branch", "item", tip)  # the fix: restore what the precondition names
    _run_next(work, blocked.stdout, db)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_literal_following_apply_interrupted(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """An expired apply is requeued by recover; the command it names integrates the item."""
    db = _db(request, backend)
    work = _plain_item(tmp_path, _BASE + "lease_ttl = 1\n", db)
    assert _sh(work, "mergegate start item", db).returncode == 0
    time.sleep(1.2)  # the integrator is gone: its lease expires
    recovered = _sh(work, "mergegate recover", db)
    assert recovered.returncode == 0, recovered.stderr
    assert "requeue, applying -> pending" in recovered.stdout, recovered.stdout
    assert "next: mergegate apply item" in recovered.stdout, recovered.stdout
    assert _sh(work, "mergegate apply item", db).returncode == 0
    doc = json.loads(_sh(work, "mergegate show item --json", db).stdout)
    assert doc["result"]["candidate"]["state"] == "integrated"
