"""Follow-ups of blocked integrations: the todo scaffold, the roadmap, the outbox drain,
the "resolved" rule and the resume guidance.

Wire it into an Engine with the one factory (docs/python-api.md)::

    engine = build_engine(store, Wiring(todos_root))

``__all__`` is the public API. Names imported as ``X as X`` are internals
shared with mergegate's CLI; they are not part of the API.

This package imports only ``mergegate.statemachine``.
"""

from .contain import check_inside as check_inside
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
from .paths import todo_path as todo_path
from .resolver import (
    CallableResolver,
    FolderRemovedResolver,
    RoadmapGoneResolver,
    StateFileResolver,
)
from .roadmap import add_roadmap_entry as add_roadmap_entry
from .roadmap import remove_roadmap_entry as remove_roadmap_entry
from .roadmap import roadmap_slugs
from .scaffold import Scaffold, ScaffoldResult, TodoScaffold
from .scaffold import read_source as read_source
from .scaffold import scaffold_todo as scaffold_todo
from .templates import PLACEHOLDERS, GuidanceTemplates
from .text import one_line as one_line
from .todo_text import STATE_DONE, STATE_OPEN, TODO_FILES, render_todo
from .wiring import Wiring, build_engine
from .withdraw import STATE_WITHDRAWN, mark_withdrawn

__all__ = [
    "CODE_BLOCKED",
    "CODE_FOLLOWUP_FAILED",
    "CODE_FOLLOWUP_PENDING",
    "DEFAULT_GROUP",
    "PLACEHOLDERS",
    "STATE_DONE",
    "STATE_OPEN",
    "STATE_WITHDRAWN",
    "TODO_FILES",
    "CallableResolver",
    "DrainResult",
    "FolderRemovedResolver",
    "FollowUpConflict",
    "FollowUpError",
    "FollowUpGuide",
    "FollowUpHook",
    "FollowUps",
    "GuidanceTemplates",
    "InvalidTemplate",
    "LockTimeout",
    "MalformedRoadmap",
    "NotMarkable",
    "PathOutsideRepository",
    "PathOutsideTodos",
    "ResolvedRule",
    "RoadmapGoneResolver",
    "Scaffold",
    "ScaffoldResult",
    "StateFileResolver",
    "TodoScaffold",
    "UnsafeFile",
    "Wiring",
    "build_engine",
    "drain",
    "mark_done",
    "mark_withdrawn",
    "render_todo",
    "roadmap_slugs",
]
