"""One blocked outcome's follow-up on disk: its todo folder, then its roadmap entry."""

from __future__ import annotations

from pathlib import Path

import attrs

from mergegate.statemachine import BlockedRecord, BlockedReport

from .contain import check_inside
from .paths import DEFAULT_GROUP
from .roadmap import add_roadmap_entry, check_group
from .scaffold import Scaffold, ScaffoldResult, TodoScaffold
from .templates import GuidanceTemplates

__all__ = ["FollowUps"]


def _roadmap_default(instance: FollowUps) -> Path:
    return instance.todos_root / "roadmap.yaml"


def _scaffold_default(instance: FollowUps) -> Scaffold:
    return TodoScaffold(instance.templates)


def _check_group(_instance: object, _attribute: object, value: str | None) -> None:
    if value is not None:
        check_group(value)


@attrs.frozen
class FollowUps:
    """Where follow-ups go: the todos folder, the roadmap file, the roadmap group, the templates.

    ``roadmap`` defaults to ``<todos_root>/roadmap.yaml``; ``group`` ``None``
    writes entries without a group. ``boundary``, when given (the CLI gives the
    repository root), is the folder that the todos folder and the roadmap must
    resolve inside, checked again before every write. Raises InvalidInput for a
    group that is not one printable line, and InvalidTemplate (from the
    templates) for a bad template.
    """

    todos_root: Path = attrs.field(converter=Path)
    #: ``None``: the host keeps no roadmap; no roadmap.yaml and no lock are written.
    roadmap: Path | None = attrs.field(
        default=attrs.Factory(_roadmap_default, takes_self=True),
        converter=attrs.converters.optional(Path),
    )
    group: str | None = attrs.field(default=DEFAULT_GROUP, validator=_check_group)
    templates: GuidanceTemplates = attrs.field(factory=GuidanceTemplates)
    boundary: Path | None = attrs.field(
        default=None, converter=attrs.converters.optional(Path), kw_only=True
    )
    #: Which files a follow-up holds; the default writes mergegate's six with ``templates``.
    scaffold: Scaffold = attrs.field(
        default=attrs.Factory(_scaffold_default, takes_self=True), kw_only=True
    )

    def check_contained(self) -> None:
        """Raise PathOutsideRepository if the todos folder or the roadmap resolves outside
        ``boundary``; a no-op without one."""
        if self.boundary is not None:
            check_inside(self.boundary, self.todos_root, "todos")
            if self.roadmap is not None:
                check_inside(self.boundary, self.roadmap, "roadmap")

    def materialize(self, record: BlockedRecord, report: BlockedReport) -> ScaffoldResult:
        """Create or reuse ``record``'s todo folder, then add its roadmap entry if missing.

        Both steps are idempotent, so a retry after a failure or a crash
        finishes the job. The entry lists ``record.previous_follow_up`` under
        ``after``. Raises PathOutsideRepository, writing nothing, if a path
        resolves outside ``boundary``, and what the scaffold's ``write`` and
        :func:`add_roadmap_entry` raise.
        """
        self.check_contained()
        self.todos_root.mkdir(parents=True, exist_ok=True)
        # Checked again once the folder exists, so a symlink swapped in meanwhile
        # is caught before the first file is written.
        self.check_contained()
        result = self.scaffold.write(self.todos_root, record, report)
        if self.roadmap is None:
            return result
        key = record.key
        add_roadmap_entry(
            self.roadmap,
            record.follow_up_slug,
            group=self.group,
            after=() if record.previous_follow_up is None else (record.previous_follow_up,),
            description=(
                f"Unblock the integration of {key.slug} ({key.branch}@{key.sha[:7]}): "
                f"{record.reason.value}"
            ),
        )
        return result

    def deliver(self, record: BlockedRecord) -> None:
        """``record``'s candidate was integrated: let the scaffold archive or drop its folder."""
        self.check_contained()
        self.scaffold.deliver(self.todos_root, record)
