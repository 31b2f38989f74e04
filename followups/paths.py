"""Where a follow-up lives: its todo folder, checked to stay inside the todos folder, and the
roadmap group it is listed under unless the configuration names another."""

from __future__ import annotations

import re
from pathlib import Path

from mergegate.statemachine import InvalidInput
from mergegate.statemachine._validation import check_slug

from .errors import PathOutsideTodos

__all__ = ["DEFAULT_GROUP", "todo_path"]

# Here, not in materialize.py beside its one use: the configuration loader
# reads it on every command, and materialize imports the roadmap and the scaffold.
DEFAULT_GROUP = "integration-blocked"

# Long enough for any follow-up slug the core derives, short enough for one file name.
_NAME_MAX = 200
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def todo_path(todos_root: Path, follow_up_slug: str) -> Path:
    """The folder ``<todos_root>/<follow_up_slug>``, resolved.

    Raises InvalidInput if the slug is not a slug, and PathOutsideTodos if the
    resolved folder is not a direct child of the resolved todos folder (a
    symlink pointing elsewhere, for instance). Records are validated already;
    this is the check closest to the filesystem, kept as defence in depth.
    """
    check_slug(follow_up_slug, field="follow-up slug", limit=_NAME_MAX)
    if not _SLUG.fullmatch(follow_up_slug):
        # check_slug's "$" also matches before a final newline; a file name must not.
        raise InvalidInput(
            "follow-up slug", follow_up_slug, "use lowercase letters, digits and single hyphens"
        )
    root = Path(todos_root).resolve()
    target = (root / follow_up_slug).resolve()
    if target.parent != root or target.name != follow_up_slug:
        raise PathOutsideTodos(follow_up_slug, str(root), str(target))
    return target
