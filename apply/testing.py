"""Real git repositories for tests: build them from plans, and observe them.

A downstream suite that tests an applier on git can build the repositories
that :func:`mergegate.statemachine.testing.strategies.repo_plans` describes,
and compare :class:`Snapshot` values before and after an apply. Needs the
``testing`` extra (hypothesis), like ``mergegate.statemachine.testing``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from mergegate.statemachine.testing.strategies import CommitPlan, RepoPlan

from .git import Git, Identity

__all__ = ["Snapshot", "TestRepo", "marker_check_script"]

_TESTER = Identity("tester", "tester@example.com")


def _data(text: str) -> str:
    return f"data {len(text.encode())}\n{text}\n"


@attrs.frozen
class Snapshot:
    """What apply invariants compare: every ref, every worktree, the checkout's status."""

    refs: Mapping[str, str]
    worktrees: tuple[str, ...]
    status: str | None


@attrs.define
class TestRepo:
    """A repository for tests: bare, or with a checkout of a branch other than main."""

    __test__ = False  # not a pytest test class, despite its name

    path: Path
    bare: bool
    _git: Git = attrs.field(init=False)
    _counter: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._git = Git(self.path, _TESTER)

    @classmethod
    def create(cls, path: Path, *, bare: bool = True) -> TestRepo:
        """An empty repository at ``path`` (no commits; HEAD names the unborn ``work``)."""
        path.mkdir(parents=True)
        Git(path, _TESTER).run("init", "-q", *(["--bare"] if bare else []), "-b", "work")
        return cls(path, bare)

    def git(self, *args: str, stdin: bytes | None = None) -> str:
        """Run git here; return stdout without its last newline. Raises GitCommandFailed."""
        return self._git.run(*args, stdin=stdin).text

    def commit(
        self, ref: str, parent: str | None, edits: Mapping[str, str | None], message: str = "c"
    ) -> str:
        """Commit ``edits`` (content, or ``None`` to delete) on ``parent``, set ``ref`` to it.

        Returns the new commit's sha. Timestamps are fixed and increasing, so
        the same plan always builds the same shas.
        """
        self._counter += 1
        stamp = f"{1_700_000_000 + self._counter} +0000"
        stream = f"commit {ref}\nmark :1\nauthor t <t@x> {stamp}\ncommitter t <t@x> {stamp}\n"
        stream += _data(message)
        if parent is not None:
            stream += f"from {parent}\n"
        for path, content in sorted(edits.items()):
            if content is None:
                stream += f"D {path}\n"
            else:
                stream += f"M 100644 inline {path}\n" + _data(content)
        fd, name = tempfile.mkstemp(prefix="mergegate-marks-")
        os.close(fd)
        marks = Path(name)
        try:
            self.git(
                "fast-import",
                "--quiet",
                "--force",
                f"--export-marks={marks}",
                stdin=stream.encode(),
            )
            return marks.read_text().split()[1]
        finally:
            marks.unlink()

    def build(self, plan: RepoPlan) -> dict[str, str]:
        """Make main's history and every branch of ``plan``; return branch name -> tip sha."""
        history: list[str] = []
        for step in plan.main:
            history.append(self._commit_plan("refs/heads/main", history[-1:], step))
        tips = {"main": history[-1]}
        for branch in plan.branches:
            parent = history[min(branch.base, len(history) - 1)]
            for step in branch.commits:
                parent = self._commit_plan(f"refs/heads/{branch.name}", [parent], step)
            tips[branch.name] = parent
        return tips

    def _commit_plan(self, ref: str, parent: list[str], step: CommitPlan) -> str:
        edits = {e.path: e.content for e in step.edits}
        return self.commit(ref, parent[0] if parent else None, edits)

    def main(self) -> str:
        """The sha main points at."""
        return self.git("rev-parse", "--verify", "refs/heads/main")

    def parents(self, sha: str) -> list[str]:
        """The parents of ``sha``, in order."""
        return self.git("rev-list", "--parents", "-n1", "--end-of-options", sha).split()[1:]

    def files(self, sha: str) -> set[str]:
        """Every path in ``sha``'s tree."""
        out = self.git("ls-tree", "-r", "--name-only", "-z", "--end-of-options", sha)
        return {p for p in out.split("\0") if p}

    def snapshot(self) -> Snapshot:
        """Refs, worktrees and the checkout's status, as the invariants compare them."""
        refs = {}
        for line in self.git("for-each-ref", "--format=%(refname) %(objectname)").splitlines():
            name, sha = line.split(" ")
            refs[name] = sha
        trees = tuple(
            line.split(" ", 1)[1]
            for line in self.git("worktree", "list", "--porcelain").splitlines()
            if line.startswith("worktree ")
        )
        status = None if self.bare else self.git("status", "--porcelain", "--untracked-files=all")
        return Snapshot(refs, trees, status)

    def scratch_leftovers(self) -> list[str]:
        """The names of anything left in mergegate's scratch-worktree directory."""
        common = Path(self.git("rev-parse", "--path-format=absolute", "--git-common-dir"))
        root = common / "mergegate" / "worktrees"
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def marker_check_script(directory: Path, marker: str = "FAIL") -> Path:
    """Write (once) a check script that fails when ``marker`` exists in its cwd."""
    script = directory / "check_marker.py"
    if not script.exists():
        script.write_text(f"import os, sys\nsys.exit(1 if os.path.exists({marker!r}) else 0)\n")
    return script
