"""The applier holds a candidate whose merge changes ``[tool.mergegate]``, not one that
changes the rest of ``pyproject.toml``; an approval of its exact sha lets it through."""

from __future__ import annotations

from pathlib import Path

from mergegate.apply import GitApplier
from mergegate.statemachine import Blocked, CandidateKey, Integrated, Reason

from ..gitrepo import git, init_repo

PYPROJECT = '[project]\nname = "x"\n\n[tool.mergegate]\nlease_ttl = 600\n'


def _repo(tmp_path: Path) -> Path:
    repo = init_repo(tmp_path / "repo", bare=False)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    git(repo, "add", "pyproject.toml")
    git(repo, "commit", "-qm", "initial")
    git(repo, "checkout", "-q", "--detach")
    return repo


def _branch(repo: Path, name: str, text: str) -> CandidateKey:
    git(repo, "checkout", "-q", "-b", name, "main")
    (repo / "pyproject.toml").write_text(text)
    git(repo, "commit", "-qam", name)
    git(repo, "checkout", "-q", "--detach")
    return CandidateKey(name, name, git(repo, "rev-parse", name))


def _noop() -> None:
    return None


def test_pyproject_outside_the_tool_table_is_not_held(tmp_path: Path) -> None:
    """A change to [project] only is integrated; the configuration is the same."""
    repo = _repo(tmp_path)
    key = _branch(repo, "meta", PYPROJECT.replace('"x"', '"y"'))
    with GitApplier(repo) as applier:
        assert isinstance(applier.apply(key, _noop), Integrated)


def test_the_tool_table_is_held_until_that_sha_is_approved(tmp_path: Path) -> None:
    """A change to [tool.mergegate] is config_changed with the diff; approved, it integrates."""
    repo = _repo(tmp_path)
    key = _branch(repo, "gate", PYPROJECT.replace("600", "60"))
    before = git(repo, "rev-parse", "main")
    with GitApplier(repo) as applier:
        held = applier.apply(key, _noop)
        assert isinstance(held, Blocked)
        assert held.report.reason is Reason.CONFIG_CHANGED
        assert held.report.evidence.files == ("pyproject.toml",)
        assert (held.report.evidence.diagnostic or "").endswith("-lease_ttl = 600\n+lease_ttl = 60")
        assert git(repo, "rev-parse", "main") == before
        applier.approved = lambda k: k == key
        assert isinstance(applier.apply(key, _noop), Integrated)
