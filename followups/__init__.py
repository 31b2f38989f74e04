"""Follow-ups of blocked integrations: the todo scaffold, the roadmap, the outbox drain,
the "resolved" rule and the resume guidance.

Wire it into an Engine with the one factory (docs/python-api.md)::

    engine = build_engine(store, Wiring(todos_root))

``__all__`` is the public API. mergegate's CLI imports the internals it
shares (``one_line``, ``todo_path``, the roadmap writers...) from their modules.

This package imports only ``mergegate.statemachine``.
"""

# The names are imported on first use: the CLI loads this package for one
# helper or two (the guidance, ``one_line``), and must not pay for the YAML
# roadmap, the file lock and the todo writer on every call (docs/performance.md).
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .done import Combine, NotMarkable, ResolvedRule, ResolvedRules, mark_done, resolver_for
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
    from .materialize import FollowUps
    from .outbox import DrainResult, FollowUpHook, drain
    from .paths import DEFAULT_GROUP
    from .resolver import (
        AllResolved,
        AnyResolved,
        CallableResolver,
        FolderRemovedResolver,
        RoadmapGoneResolver,
        StateFileResolver,
    )
    from .roadmap import roadmap_slugs
    from .scaffold import Scaffold, ScaffoldResult, TodoScaffold
    from .templates import PLACEHOLDERS, GuidanceTemplates
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
    "AllResolved",
    "AnyResolved",
    "CallableResolver",
    "Combine",
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
    "ResolvedRules",
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
    "resolver_for",
    "roadmap_slugs",
]

_HOME = {
    "AllResolved": "resolver",
    "AnyResolved": "resolver",
    "CODE_BLOCKED": "guidance",
    "CODE_FOLLOWUP_FAILED": "guidance",
    "CODE_FOLLOWUP_PENDING": "guidance",
    "CallableResolver": "resolver",
    "Combine": "done",
    "DEFAULT_GROUP": "paths",
    "DrainResult": "outbox",
    "FolderRemovedResolver": "resolver",
    "FollowUpConflict": "errors",
    "FollowUpError": "errors",
    "FollowUpGuide": "guidance",
    "FollowUpHook": "outbox",
    "FollowUps": "materialize",
    "GuidanceTemplates": "templates",
    "InvalidTemplate": "errors",
    "LockTimeout": "errors",
    "MalformedRoadmap": "errors",
    "NotMarkable": "done",
    "PLACEHOLDERS": "templates",
    "PathOutsideRepository": "errors",
    "PathOutsideTodos": "errors",
    "ResolvedRule": "done",
    "ResolvedRules": "done",
    "RoadmapGoneResolver": "resolver",
    "STATE_DONE": "todo_text",
    "STATE_OPEN": "todo_text",
    "STATE_WITHDRAWN": "withdraw",
    "Scaffold": "scaffold",
    "ScaffoldResult": "scaffold",
    "StateFileResolver": "resolver",
    "TODO_FILES": "todo_text",
    "TodoScaffold": "scaffold",
    "UnsafeFile": "errors",
    "Wiring": "wiring",
    "build_engine": "wiring",
    "drain": "outbox",
    "mark_done": "done",
    "mark_withdrawn": "withdraw",
    "render_todo": "todo_text",
    "resolver_for": "done",
    "roadmap_slugs": "roadmap",
}


# Hidden from type checkers: a module __getattr__ typed `-> Any` would make every
# name importable to mypy, so `from ... import Wirng` would type-check (issue 24).
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        home = _HOME.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{home}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    # Every name the package answers: its public API.
    return sorted(_HOME)
