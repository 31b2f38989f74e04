"""``show SLUG``, ``list`` and ``--version`` answered without click, attrs or the engine.

Every call is a new process, and the general path imports click, attrs, the
lifecycle table and the store before it reads a row: ``show`` cost 11x
``python -c pass`` that way (docs/performance.md, "Command start-up"). The
commands an operator runs most only read, so their plainest form is answered
here, straight from the default SQLite file, with the store's own queries and
the same output (tests/cli/test_cli_fastread.py compares the two paths byte
for byte, and pins the copies of the table's state sets and the schema
version in _faststore.py to their sources).

It answers only when it is sure, and otherwise returns ``None`` so that the
command runs through click as before: any other option or form of the command
line (``--json`` and ``--repo`` are understood), a ``MERGEGATE_*`` variable
other than the actor, a configuration file, a store that is not the default
SQLite file at the schema version this module knows, a candidate that is or
was blocked, a recorded check build, and every error. A read writes nothing, so stepping
aside halfway is safe: the general path starts over and reports whatever is
wrong in its own words.

This module reads the command line and finishes the answer; _fastgate.py
checks what the session would check, _faststore.py reads the store, and
_fastshow.py and _fastlist.py make the two answers. Each is imported only
when the call needs it: ``--version`` opens no repository, and ``show`` and
``list`` do not load each other's module.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .names import DB_FILE, VERSION

__all__ = ["Answer", "answer"]

# The checks a slug passes (statemachine/_validation.py).
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_SLUG_MAX = 64


class Answer:
    """What a command prints on stdout, whole, and its exit code."""

    __slots__ = ("code", "command", "json", "text")

    def __init__(self, text: str, *, command: str = "mergegate", json: bool = False) -> None:
        self.text, self.command, self.json, self.code = text, command, json, 0


def answer(args: Sequence[str]) -> Answer | None:
    """The answer to ``mergegate ARGS`` if it is a plain read this module is sure of."""
    if list(args) == ["--version"]:
        return Answer(f"mergegate {VERSION}\n")
    parsed = _parse(args)
    if parsed is None:
        return None
    # MERGEGATE_ACTOR is checked below; MERGEGATE_DB names another store, and
    # _MERGEGATE_COMPLETE asks click for shell completion.
    named = {k for k in os.environ if k.startswith(("MERGEGATE_", "_MERGEGATE"))}
    if named - {"MERGEGATE_ACTOR"}:
        return None
    command, slug, json_mode, repo = parsed
    try:
        # Imported here, not at the top: see the module's docstring.
        from ._fastgate import check_actor, check_defaults, locate  # noqa: PLC0415
        from ._faststore import Reader  # noqa: PLC0415

        root, common = locate(Path(repo).absolute())
        check_defaults(root)
        check_actor()
        with Reader(common / "mergegate" / DB_FILE) as db:
            if command == "show":
                from ._fastshow import show  # noqa: PLC0415

                assert slug is not None
                result, text = show(db, slug)
            else:
                from datetime import UTC, datetime  # noqa: PLC0415

                from ._fastlist import list_queue  # noqa: PLC0415

                result, text = list_queue(db, datetime.now(UTC))
    except Exception:  # any doubt: the general path answers, errors included
        return None
    return _finish(command, json_mode, result, text)


def _parse(args: Sequence[str]) -> tuple[str, str | None, bool, str] | None:
    """``[--json] [--repo PATH] show SLUG [--json]`` or the same with ``list`` (no SLUG);
    the command, the slug, JSON mode and the repository path; anything else ``None``."""
    words = list(args)
    json_mode, repo = False, "."
    while words and words[0].startswith("-"):
        if words[0] == "--json":
            json_mode, words = True, words[1:]
        elif words[0] == "--repo" and len(words) > 1:
            repo, words = words[1], words[2:]
        elif words[0].startswith("--repo="):
            repo, words = words[0].removeprefix("--repo="), words[1:]
        else:
            return None
    if not words or words[0] not in ("show", "list") or not repo:
        return None
    positional = []
    for word in words[1:]:
        if word == "--json":
            json_mode = True
        elif word.startswith("-"):
            return None
        else:
            positional.append(word)
    if words[0] == "list":
        return None if positional else ("list", None, json_mode, repo)
    if len(positional) != 1 or not _SLUG.fullmatch(positional[0]):
        return None
    if len(positional[0]) > _SLUG_MAX:
        return None
    return "show", positional[0], json_mode, repo


def _finish(command: str, json_mode: bool, result: dict[str, Any], text: str) -> Answer | None:
    from .colour import enabled, paint  # noqa: PLC0415
    from .output import document  # noqa: PLC0415

    stdout = sys.stdout
    if stdout is None:
        return None
    if json_mode:
        out = document(command, 0, result=result)
    else:
        out = paint(text) if enabled(stdout) else text
    # click re-encodes a stream that claims ASCII as UTF-8; a plain write would not.
    if not out.isascii() and (stdout.encoding or "").lower().replace("-", "") != "utf8":
        return None
    return Answer(out, command=command, json=json_mode)
