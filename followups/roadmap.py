"""The roadmap file ``todos/roadmap.yaml``: a YAML list of ``{slug, group?, after?, description?}``.

The first entry has the highest priority. Humans edit this file, so it is read
and written in ruamel's round-trip mode, which keeps their comments, order and
quoting. Writers take a file lock, re-read under it, and replace the file
atomically, so concurrent writers never lose each other's entries. Neither the
roadmap nor its lock file is ever reached through a symlink (see fsio, lockfile).
"""

from __future__ import annotations

import functools
import glob
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergegate.statemachine import InvalidInput
from mergegate.statemachine._validation import check_slug

from .errors import MalformedRoadmap
from .fsio import read_regular, replace_file
from .lockfile import exclusive
from .text import one_line

if TYPE_CHECKING:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

__all__ = ["add_roadmap_entry", "check_group", "remove_roadmap_entry", "roadmap_slugs"]

# ruamel.yaml and filelock are imported by the functions that use them: importing
# this package (as every `mergegate` command does) must not load them.

_ITEM_INDENT = re.compile(r"^( *)- ", re.MULTILINE)
_LOCK_TIMEOUT = 60.0
_SLUG_LIMIT = 200


@functools.cache
def _safe() -> YAML:
    from ruamel.yaml import YAML  # noqa: PLC0415

    return YAML(typ="safe")


def _yaml(text: str) -> YAML:
    from ruamel.yaml import YAML  # noqa: PLC0415

    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    # Long descriptions stay on one line; wrapping would rewrite a human's lines.
    yaml.width = 4096
    # Keep the human's list indentation ("- slug" or "  - slug") rather than ruamel's default.
    match = _ITEM_INDENT.search(text)
    offset = len(match.group(1)) if match else 0
    yaml.indent(mapping=2, sequence=offset + 2, offset=offset)
    return yaml


def _is_blank(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def _parse(path: Path, text: str, yaml: YAML) -> list[Any] | None:
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    if _is_blank(text):
        return None
    try:
        data: Any = yaml.load(text)
    except YAMLError as err:
        problem = " ".join(str(err).split())
        raise MalformedRoadmap(str(path), f"not valid YAML: {problem[:200]}") from None
    if not isinstance(data, list):
        raise MalformedRoadmap(str(path), f"the top level is a {type(data).__name__}, not a list")
    for index, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("slug"), str):
            raise MalformedRoadmap(str(path), f"entry {index + 1} is not a mapping with a slug")
    return data


def _entries(path: Path, text: str) -> list[dict[str, Any]] | None:
    """The roadmap's entries as plain data; ``None`` when it holds none (absent, empty, comments).

    Reading needs no comments, so this uses the safe loader, which runs in C
    when ruamel.yaml.clib is installed: about eight times faster than the
    round-trip loader on a roadmap of forty entries, and a block reads it twice.
    """
    return _parse(path, text, _safe())


# The slugs of the last roadmap text parsed or written, per path. A block of an
# identity already blocked queues its follow-up again and asks for its roadmap
# entry again; parsing the whole roadmap to find the entry there cost a replay
# ten times a plain move. Keyed by the whole text, not by the file's stat, so an
# edit by anyone is seen: comparing two strings costs far less than a parse.
_SEEN: dict[str, tuple[str, frozenset[str]]] = {}


def _known_slugs(path: Path, text: str) -> frozenset[str]:
    """The slugs of ``text`` (the roadmap at ``path``), parsed once per distinct text."""
    seen = _SEEN.get(str(path))
    if seen is not None and seen[0] == text:
        return seen[1]
    data = _entries(path, text)
    slugs = frozenset() if data is None else frozenset(str(entry["slug"]) for entry in data)
    _SEEN[str(path)] = (text, slugs)
    return slugs


def _load(path: Path, text: str) -> CommentedSeq | None:
    """The roadmap list of ``text`` in round-trip form, comments attached, for re-dumping."""
    from ruamel.yaml.comments import CommentedSeq  # noqa: PLC0415

    data = _parse(path, text, _yaml(text))
    assert data is None or isinstance(data, CommentedSeq)
    return data


def _read(path: Path) -> str:
    """The roadmap's text; ``""`` if it is missing. Raises UnsafeFile for a symlink."""
    data = read_regular(path)
    try:
        return "" if data is None else data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRoadmap(str(path), "not UTF-8 text") from None


def _dump(yaml: YAML, data: Any) -> str:
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _with_entry(
    path: Path, text: str, data: list[dict[str, Any]] | None, entry: CommentedMap
) -> str:
    """``text`` with ``entry`` appended to its list.

    The entry is appended as text, which keeps every byte a human wrote,
    including indentation a full re-dump would normalize. If the result does not
    parse back to the old list plus the entry (a flow-style list, a document
    end marker), the whole list is re-dumped in round-trip mode instead, which
    still keeps the comments and the order.
    """
    from ruamel.yaml.comments import CommentedSeq  # noqa: PLC0415

    yaml = _yaml(text)
    base = text if not text or text.endswith("\n") else text + "\n"
    appended = base + _dump(yaml, CommentedSeq([entry]))
    expected = [] if data is None else [e["slug"] for e in data]
    expected.append(entry["slug"])
    try:
        reread = _entries(path, appended)
    except MalformedRoadmap:
        reread = None
    if reread is not None and [e["slug"] for e in reread] == expected and reread[-1] == entry:
        return appended
    full = _load(path, text)
    assert full is not None  # a list-less file always takes the appended form
    full.append(entry)
    return _dump(yaml, full)


def check_group(group: str) -> str:
    """Return ``group`` if it is one printable line of 1 to 100 characters; raise InvalidInput."""
    if not isinstance(group, str) or not group or one_line(group, limit=100) != group:
        raise InvalidInput("roadmap group", group, "use one printable line of 1 to 100 characters")
    return group


def roadmap_slugs(path: Path) -> list[str]:
    """The slugs of the roadmap at ``path``, highest priority first; ``[]`` if it is missing.

    Raises MalformedRoadmap if the file is not a list of mappings with a slug,
    and UnsafeFile if it is a symlink (its target is not read).
    """
    data = _entries(path, _read(path))
    return [] if data is None else [str(entry["slug"]) for entry in data]


def add_roadmap_entry(
    path: Path,
    slug: str,
    *,
    group: str | None = None,
    after: Sequence[str] = (),
    description: str | None = None,
) -> bool:
    """Append ``{slug, group?, after?, description?}`` to the roadmap unless ``slug`` is there.

    Returns whether an entry was added. A missing file (and its folder) is
    created; an existing one keeps its comments and order, and is replaced
    atomically under the lock ``<path>.lock``, so concurrent writers serialize.
    Raises MalformedRoadmap (leaving the file untouched) if it is not a list of
    mappings with a slug, UnsafeFile (touching nothing) if the roadmap or its
    lock file is a symlink, and OSError if the filesystem refuses.
    """
    check_slug(slug, field="roadmap slug", limit=_SLUG_LIMIT)
    if group is not None:
        check_group(group)
    for previous in after:
        check_slug(previous, field="roadmap after", limit=_SLUG_LIMIT)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ruamel.yaml.comments import CommentedMap, CommentedSeq  # noqa: PLC0415

    lock = path.with_name(path.name + ".lock")
    # A short poll: a writer holds the lock for one small file replace.
    with exclusive(lock, timeout=_LOCK_TIMEOUT, poll=0.005):
        # Only a lock holder writes these, so any found now is a killed writer's.
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            leftover.unlink(missing_ok=True)
        text = _read(path)
        known = _known_slugs(path, text)
        if slug in known:
            return False
        data = _entries(path, text)
        entry = CommentedMap()
        entry["slug"] = slug
        if group is not None:
            entry["group"] = group
        if after:
            entry["after"] = CommentedSeq(after)
        summary = None if description is None else one_line(" ".join(description.split()), 500)
        if summary:
            # One printable line: YAML emitters mangle some control characters (NEL).
            entry["description"] = summary
        written = _with_entry(path, text, data, entry)
        replace_file(path, written)
        _SEEN[str(path)] = (written, known | {slug})
        return True


def remove_roadmap_entry(path: Path, slug: str) -> bool:
    """Remove the entry of ``slug`` from the roadmap; return whether one was removed.

    Under the same lock as :func:`add_roadmap_entry`, re-dumped in round-trip
    mode (comments and order kept). A missing roadmap holds no entry. Raises
    MalformedRoadmap and UnsafeFile as ``add_roadmap_entry`` does.
    """
    check_slug(slug, field="roadmap slug", limit=_SLUG_LIMIT)
    path = Path(path)
    if not path.parent.is_dir():
        return False
    lock = path.with_name(path.name + ".lock")
    with exclusive(lock, timeout=_LOCK_TIMEOUT, poll=0.005):
        text = _read(path)
        data = _load(path, text)
        if data is None:
            return False
        kept = [i for i, entry in enumerate(data) if entry["slug"] != slug]
        if len(kept) == len(data):
            return False
        for index in reversed(range(len(data))):
            if data[index]["slug"] == slug:
                del data[index]
        replace_file(path, _dump(_yaml(text), data) if len(data) else "[]\n")
        return True
