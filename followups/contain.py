"""The one containment check: a path, symlinks resolved, must stay inside the repository.

The configuration runs it on every path it hands out, explicit or default,
and :class:`~mergegate.followups.FollowUps` runs it again right before it
writes, so a symlink planted after the configuration was read is caught too.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PathOutsideRepository

__all__ = ["check_inside"]


def check_inside(root: Path, path: Path, key: str) -> Path:
    """``path`` with every symlink resolved, if that is ``root`` or lies below it.

    ``path`` need not exist: the part that exists is resolved, the rest is
    taken as written. Raises PathOutsideRepository naming ``key`` otherwise.
    """
    top = Path(root).resolve()
    resolved = Path(path).resolve()
    if resolved != top and top not in resolved.parents:
        raise PathOutsideRepository(key, str(path), str(resolved), str(top))
    return resolved
