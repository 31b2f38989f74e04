"""Follow-ups of blocked integrations: the todo scaffold, the roadmap, the outbox drain,
the "resolved" rule and the resume guidance.

Wire it into an Engine with the three protocol implementations::

    followups = FollowUps(todos_root)
    engine = Engine(
        store,
        hooks=[FollowUpHook(store, followups)],
        guide=FollowUpGuide(followups.templates),
        resolver=StateFileResolver(todos_root),
    )

This package imports only ``mergegate.statemachine``.
"""

from .contain import check_inside
from .done import NotMarkable, ResolvedRule, mark_done
from .errors import (
    FollowUpConflict,
    FollowUpError,
    InvalidTemplate,
    LockTimeout,
    MalformedRoadmap,
    PathOutsideRepository,
    PathOutsideTodos,
    UnsafeFile,
)
from .guidance import CODE_BLOCKED, CODE_FOLLOWUP_FAILED, CODE_FOLLOWUP_PENDING, FollowUpGuide
from .materialize import DEFAULT_GROUP, FollowUps
from .outbox import DrainResult, FollowUpHook, drain
from .paths import todo_path
from .resolver import (
    CallableResolver,
    FolderRemovedResolver,
    RoadmapGoneResolver,
    StateFileResolver,
)
from .roadmap import add_roadmap_entry, remove_roadmap_entry, roadmap_slugs
from .scaffold import ScaffoldResult, read_source, scaffold_todo
from .templates import PLACEHOLDERS, GuidanceTemplates
from .text import one_line
from .todo_text import STATE_DONE, STATE_OPEN, TODO_FILES, render_todo
from .withdraw import STATE_WITHDRAWN, mark_withdrawn

__all__ = [
    "CallableResolver",
    "FolderRemovedResolver",
    "NotMarkable",
    "ResolvedRule",
    "RoadmapGoneResolver",
    "mark_done",
    "remove_roadmap_entry",
    "CODE_BLOCKED",
    "CODE_FOLLOWUP_FAILED",
    "CODE_FOLLOWUP_PENDING",
    "DEFAULT_GROUP",
    "PLACEHOLDERS",
    "STATE_DONE",
    "STATE_OPEN",
    "STATE_WITHDRAWN",
    "TODO_FILES",
    "DrainResult",
    "FollowUpConflict",
    "FollowUpError",
    "FollowUpGuide",
    "FollowUpHook",
    "FollowUps",
    "GuidanceTemplates",
    "InvalidTemplate",
    "LockTimeout",
    "MalformedRoadmap",
    "PathOutsideRepository",
    "PathOutsideTodos",
    "ScaffoldResult",
    "StateFileResolver",
    "UnsafeFile",
    "add_roadmap_entry",
    "check_inside",
    "drain",
    "mark_withdrawn",
    "one_line",
    "read_source",
    "render_todo",
    "roadmap_slugs",
    "scaffold_todo",
    "todo_path",
]
