"""Whether a merge changes the integrator's own configuration (reason ``config_changed``).

The configuration mergegate reads (``mergegate.toml`` at the repository root,
or the ``[tool.mergegate]`` table of ``pyproject.toml``) decides which checks
gate every candidate and which commands run on each move. A candidate that
changes it must not change the gate by passing the gate, so the applier holds
it before any of its checks run, until an operator approves that exact sha
(``mergegate approve``). The comparison is of the configuration, not of the
files: a ``pyproject.toml`` change outside ``[tool.mergegate]`` is not one.

The common case costs no git process: the four blob ids come from the
applier's running ``cat-file``, and only a file whose blob differs is read.
"""

from __future__ import annotations

from typing import Any

import attrs

from .catfile import CatFile
from .git import Git

__all__ = ["CONFIG_FILES", "ConfigChange", "config_change"]

#: The files at the repository root the configuration is read from (cli/config.py).
CONFIG_FILES = ("mergegate.toml", "pyproject.toml")

# How an unreadable pyproject.toml compares: equal to another unreadable one
# (the integrator reads neither), unequal to any table or to none.
_UNREADABLE = "<not readable as TOML>"


@attrs.frozen
class ConfigChange:
    """The configuration files a merge changes, and their diff against the base."""

    files: tuple[str, ...]
    diff: str


def _tool_table(git: Git, oid: str | None) -> Any:
    """The ``[tool.mergegate]`` table of the pyproject blob ``oid`` (``None`` if absent)."""
    if oid is None:
        return None
    # Imported here: only a merge that touches pyproject.toml needs a TOML parser.
    import tomllib  # noqa: PLC0415

    data = git.run("cat-file", "blob", oid).stdout
    try:
        tool = tomllib.loads(data.decode("utf-8")).get("tool")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return _UNREADABLE
    return tool.get("mergegate") if isinstance(tool, dict) else None


def config_change(git: Git, catfile: CatFile, base: str, merged_tree: str) -> ConfigChange | None:
    """What of the configuration ``merged_tree`` changes against the commit ``base``, if any."""
    own_old, own_new, py_old, py_new = catfile.lookup(
        *(f"{tree}:{name}" for name in CONFIG_FILES for tree in (base, merged_tree))
    )
    files = []
    if own_old.oid != own_new.oid:
        files.append(CONFIG_FILES[0])
    if py_old.oid != py_new.oid and _tool_table(git, py_old.oid) != _tool_table(git, py_new.oid):
        files.append(CONFIG_FILES[1])
    if not files:
        return None
    diff = git.run(
        "diff-tree",
        "-p",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        base,
        merged_tree,
        "--",
        *files,
    ).text
    return ConfigChange(tuple(files), diff or f"{', '.join(files)} changed (no text diff)")
