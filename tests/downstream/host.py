"""A downstream host, as a project embedding mergegate would write it, from public names only.

Its follow-up format is its own: one folder per follow-up holding ``TODO.md``
(what failed, refreshed on every block) and ``state.yaml`` (``state: open``);
no ``input.md`` and no roadmap. A follow-up is resolved when the folder is
removed or its ``state.yaml`` says ``state: done`` (either will do).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import attrs

from mergegate.followups import (
    AnyResolved,
    CallableResolver,
    FolderRemovedResolver,
    ScaffoldResult,
    Wiring,
)
from mergegate.statemachine import BlockedRecord, BlockedReport

__all__ = ["HostScaffold", "git", "host_state_done", "host_wiring", "mark_host_done"]

ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))},
    "GIT_AUTHOR_NAME": "Host",
    "GIT_AUTHOR_EMAIL": "host@example.com",
    "GIT_COMMITTER_NAME": "Host",
    "GIT_COMMITTER_EMAIL": "host@example.com",
    "GIT_AUTHOR_DATE": "2026-02-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-02-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, ok: tuple[int, ...] = (0,)) -> str:
    """Run git in ``cwd``; fail the test with git's stderr on an unexpected exit code."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=ENV, capture_output=True, text=True, check=False
    )
    assert done.returncode in ok, f"git {args}: {done.stderr}"
    return done.stdout.strip()


def _todo(record: BlockedRecord, report: BlockedReport) -> str:
    paths = "".join(f"- {p}\n" for p in report.evidence.conflicted_paths)
    checks = "".join(f"- {c.name}: exit {c.exit_code}\n" for c in report.evidence.checks)
    return (
        f"# {record.follow_up_slug}\n\nUnblock {record.key.slug}: {report.reason.value} "
        f"against {report.main_sha}.\n\n{paths}{checks}"
    )


@attrs.frozen
class HostScaffold:
    """The host's ``Scaffold``: TODO.md and state.yaml, nothing else; removed on delivery."""

    #: The folder holds no evidence file of mergegate's: guidance points at the store.
    evidence_file = None

    def write(
        self, todos_root: Path, record: BlockedRecord, report: BlockedReport
    ) -> ScaffoldResult:
        """Create the folder atomically, or refresh its TODO.md with the latest evidence."""
        target = todos_root / record.follow_up_slug
        if target.is_dir():
            (target / "TODO.md").write_text(_todo(record, report))
            return ScaffoldResult(target, created=False)
        tmp = Path(tempfile.mkdtemp(dir=todos_root, prefix=".host."))
        (tmp / "TODO.md").write_text(_todo(record, report))
        (tmp / "state.yaml").write_text(f"state: open\nsource: {record.key.sha}\n")
        os.rename(tmp, target)
        return ScaffoldResult(target, created=True)

    def deliver(self, todos_root: Path, record: BlockedRecord) -> None:
        """The host keeps no delivered follow-up."""
        shutil.rmtree(todos_root / record.follow_up_slug, ignore_errors=True)


def host_state_done(todos: Path) -> CallableResolver:
    """The rule "state.yaml says state: done" for the folder the record names."""

    def rule(record: BlockedRecord) -> str | None:
        state = todos / record.follow_up_slug / "state.yaml"
        if not state.is_file():
            return f"{state} is missing"
        return None if "state: done\n" in state.read_text() else f"{state} is not done"

    return CallableResolver(rule)


def host_wiring(todos: Path) -> Wiring:
    """No roadmap, the host's scaffold, and "folder removed or state done"."""
    resolver = AnyResolved([FolderRemovedResolver(todos), host_state_done(todos)])
    return Wiring(todos, roadmap=None, scaffold=HostScaffold(), resolver=resolver)


def mark_host_done(todos: Path, follow_up: str, *, remove: bool) -> None:
    """The host's "done": remove the folder, or set state: done."""
    folder = todos / follow_up
    if remove:
        shutil.rmtree(folder)
    else:
        state = folder / "state.yaml"
        state.write_text(state.read_text().replace("state: open", "state: done"))
