"""The "resolved" rule: a follow-up is resolved when its own ``state.yaml`` says ``status: done``.

The scaffold writes ``status: open``. Whoever finishes the remediation (a
person, an agent, the orchestrator) sets ``status: done``. The rule reads the
follow-up's own files only, so it needs no store and no network, and what it
reads is what a human sees in the todo folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from mergegate.statemachine import BlockedRecord, MergegateError

from .paths import todo_path
from .todo_text import STATE_DONE

__all__ = ["StateFileResolver"]


@attrs.frozen
class StateFileResolver:
    """Implements ``Resolver``: resolved iff ``<todos_root>/<follow_up>/state.yaml`` says done."""

    todos_root: Path = attrs.field(converter=Path)

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """``None`` when the follow-up's state.yaml parses and says ``status: done``.

        Otherwise a few words saying why not: the folder or the file is
        missing or unreadable, the YAML does not parse, is not a mapping, or
        its status is something else. Never raises for what it finds on disk.
        """
        name = str(self.todos_root / record.follow_up_slug)
        try:
            folder = todo_path(self.todos_root, record.follow_up_slug)
        except MergegateError as err:
            return f"follow-up folder is not usable: {err}"
        if not folder.is_dir():
            return f"follow-up folder {name} is missing"
        try:
            text = (folder / "state.yaml").read_text(encoding="utf-8")
        except FileNotFoundError:
            return f"{name}/state.yaml is missing"
        except (OSError, UnicodeDecodeError) as err:
            return f"{name}/state.yaml cannot be read ({type(err).__name__})"
        # Imported here: importing the package (every command does) must not load ruamel.
        from ruamel.yaml import YAML  # noqa: PLC0415
        from ruamel.yaml.error import YAMLError  # noqa: PLC0415

        try:
            data: Any = YAML(typ="safe", pure=True).load(text)
        except YAMLError:
            return f"{name}/state.yaml is not valid YAML"
        if not isinstance(data, dict):
            return f"{name}/state.yaml is not a mapping"
        status = data.get("status")
        if status != STATE_DONE:
            return f"{name}/state.yaml has status {status!r}, not {STATE_DONE!r}"
        return None
