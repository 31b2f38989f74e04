"""Materialize a follow-up todo folder atomically, or reuse the one already there.

:class:`Scaffold` is the protocol: which files a follow-up holds, what they
say, and what happens to them once the candidate is delivered.
:class:`TodoScaffold` is the default implementation (mergegate's six files,
kept after delivery).

The six files are written and fsynced in a temporary folder inside the todos
folder, then the folder is renamed into place. A rename is atomic, so a reader
(or a crash) sees either no folder or a complete one, never half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Protocol

import attrs

from mergegate.statemachine import BlockedRecord, BlockedReport, CandidateKey, MergegateError

from .errors import FollowUpConflict
from .fsio import fsync_dir, read_regular, replace_file, write_new_file
from .paths import todo_path
from .templates import GuidanceTemplates
from .text import code_span
from .todo_text import check_extras, render_todo

__all__ = ["Scaffold", "ScaffoldResult", "TodoScaffold", "read_source", "scaffold_todo"]

_SOURCE_FIELDS = ("slug", "branch", "sha")


@attrs.frozen
class ScaffoldResult:
    """The todo folder, and whether this call created it (``False``: it was reused)."""

    path: Path
    created: bool


def _unspan(value: str) -> str:
    ticks = len(value) - len(value.lstrip("`"))
    inner = value[ticks:-ticks] if ticks and value.endswith("`" * ticks) else value
    if len(inner) >= 2 and inner.startswith(" ") and inner.endswith(" "):
        inner = inner[1:-1]
    return inner


def _source_lines(folder: Path) -> dict[str, str] | None:
    """The raw ``- slug:``, ``- branch:`` and ``- sha:`` values of input.md's Source section."""
    try:
        # Never through a symlink: a linked input.md is not one the scaffold wrote.
        raw = read_regular(folder / "input.md")
        text = None if raw is None else raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if text is None:
        return None
    found: dict[str, str] = {}
    in_source = False
    for line in text.splitlines():
        if line.startswith("## "):
            in_source = line == "## Source"
            continue
        for name in _SOURCE_FIELDS:
            prefix = f"- {name}: "
            # The first value wins: user text (the detail, check output) comes later in the file.
            if in_source and name not in found and line.startswith(prefix):
                found[name] = line[len(prefix) :]
    return found if set(found) == set(_SOURCE_FIELDS) else None


def read_source(folder: Path) -> CandidateKey | None:
    """The candidate that ``folder/input.md`` links in its Source section, or ``None``.

    ``None`` means the folder has no readable, valid linkage: no input.md, no
    Source section, or values that are not a valid identity.
    """
    lines = _source_lines(folder)
    if lines is None:
        return None
    try:
        return CandidateKey(*(_unspan(lines[name]) for name in _SOURCE_FIELDS))
    except MergegateError:
        return None


#: The files a reused folder gets again from the latest report: the evidence only.
#: The others are the remediator's (a plan ticked off, a state marked done).
_REFRESHED = ("input.md",)


def _reuse(target: Path, key: CandidateKey, files: dict[str, str] | None = None) -> ScaffoldResult:
    # Compare the lines as the scaffold writes them, not parsed values: a branch
    # with an escaped character does not parse back, yet must still be recognized.
    expected = {name: code_span(getattr(key, name)) for name in _SOURCE_FIELDS}
    if _source_lines(target) != expected:
        raise FollowUpConflict(str(target), key, read_source(target))
    for name in () if files is None else _REFRESHED:
        assert files is not None
        # A repeated block brings new evidence (other paths, another check's
        # output): the folder says what failed last, not what failed first.
        if read_regular(target / name) != files[name].encode("utf-8"):
            replace_file(target / name, files[name])
    return ScaffoldResult(target, created=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(root: Path, follow_up_slug: str) -> None:
    """Remove the temporary folders of ``follow_up_slug`` whose writer died mid-write.

    A writer killed between ``mkdtemp`` and the rename leaves its temporary
    folder behind; the next materialization of the same follow-up removes it.
    """
    prefix = f".{follow_up_slug}."
    for entry in root.glob(f"{prefix}*.tmp"):
        pid = entry.name[len(prefix) :].partition(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def scaffold_todo(
    todos_root: Path,
    record: BlockedRecord,
    report: BlockedReport,
    templates: GuidanceTemplates | None = None,
    *,
    state_keys: Mapping[str, str] | None = None,
    sections: Mapping[str, str] | None = None,
) -> ScaffoldResult:
    """Create ``<todos_root>/<record.follow_up_slug>/`` with its six files, or reuse it.

    An existing folder whose ``input.md`` links ``record.key`` is reused: only
    its ``input.md`` is rewritten, when ``report`` (a later occurrence) says
    something else than it does; the other files are the remediator's.
    ``state_keys`` and ``sections`` are :func:`render_todo`'s. The todos folder
    is created if missing, and temporary folders that a killed writer left for
    this follow-up are removed. Raises FollowUpConflict if the folder exists
    and links another candidate (or none), PathOutsideTodos if it would lie
    outside the todos folder, and OSError if the filesystem refuses (read-only,
    full, ``todos_root`` is a file).
    """
    root = Path(todos_root)
    target = todo_path(root, record.follow_up_slug)
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root, record.follow_up_slug)
    files = render_todo(
        record, report, templates, state_keys=state_keys or {}, sections=sections or {}
    )
    if target.exists() or target.is_symlink():
        return _reuse(target, record.key, files)
    # The writer's pid in the name tells a dead writer's leftover from a live one's.
    prefix = f".{record.follow_up_slug}.{os.getpid()}."
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=root))
    try:
        for name, text in files.items():
            write_new_file(tmp / name, text)
        fsync_dir(tmp)
        # mkdtemp makes the folder 0o700; a todo folder is as readable as any other.
        os.chmod(tmp, 0o755)  # noqa: S103
        try:
            os.rename(tmp, target)
        except OSError:
            # Another writer renamed its complete folder into place first.
            if target.is_dir():
                return _reuse(target, record.key, files)
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(target.parent)
    return ScaffoldResult(target, created=True)


class Scaffold(Protocol):
    """What a follow-up is on disk: the folder's files, and its fate on delivery.

    ``write`` must be idempotent (a retry or a replay reuses what it wrote, and a
    folder it did not write for ``record.key`` raises FollowUpConflict) and
    atomic (a crash leaves no half-written folder). ``deliver`` runs once the
    candidate is integrated, after the commit; it must be idempotent too.
    Expected failures raise OSError or a MergegateError: the caller records
    them on the follow-up as ``FAILED``.

    ``evidence_file`` names the file of the folder that holds the evidence,
    for the guidance to point at; ``None`` says the folder holds none, and the
    guidance points at the stored evidence (``mergegate show``) alone. It is a
    member like the methods, so a scaffold that leaves it out (or misspells
    it) is a type error, not guidance naming a file that was never written.
    """

    @property
    def evidence_file(self) -> str | None:
        """The folder's evidence file the guidance names (``input.md``), or ``None``."""
        ...

    def write(
        self, todos_root: Path, record: BlockedRecord, report: BlockedReport
    ) -> ScaffoldResult:
        """Create ``record``'s follow-up folder under ``todos_root``, or reuse it."""
        ...

    def deliver(self, todos_root: Path, record: BlockedRecord) -> None:
        """The candidate of ``record`` was integrated: archive, delete or keep its folder."""
        ...


def _pairs(value: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(dict(value).items()))


@attrs.frozen
class TodoScaffold:
    """Implements :class:`Scaffold`: mergegate's six files (``TODO_FILES``), kept on delivery.

    ``state_keys`` adds keys to ``state.yaml`` (a host's own ``owner``,
    ``phase``...) and ``sections`` adds ``## title`` sections to
    ``requirements.md``, without a subclass; both are checked here (InvalidInput).
    """

    templates: GuidanceTemplates = attrs.field(factory=GuidanceTemplates)
    state_keys: tuple[tuple[str, str], ...] = attrs.field(
        default=(), converter=_pairs, kw_only=True
    )
    sections: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs, kw_only=True)
    #: The folder's evidence file, which the guidance names.
    evidence_file: ClassVar[str | None] = "input.md"

    def __attrs_post_init__(self) -> None:
        check_extras(dict(self.state_keys), dict(self.sections))

    def write(
        self, todos_root: Path, record: BlockedRecord, report: BlockedReport
    ) -> ScaffoldResult:
        """:func:`scaffold_todo` with this scaffold's templates and extras."""
        return scaffold_todo(
            todos_root,
            record,
            report,
            self.templates,
            state_keys=dict(self.state_keys),
            sections=dict(self.sections),
        )

    def deliver(self, todos_root: Path, record: BlockedRecord) -> None:
        """Keep the folder: its ``state.yaml`` (``status: done``) is the record of the fix."""
