"""The "resolved" rules. The default: a follow-up is resolved when mergegate created it, it is
linked to the blocked candidate, and its own ``state.yaml`` says ``status: done`` for the
latest occurrence of the block (``mergegate followups done`` writes both).

The scaffold writes ``status: open``. Whoever finishes the remediation (a
person, an agent, the orchestrator) sets ``status: done``. What the rule reads
is what a human sees in the todo folder, but a folder alone is not enough: a
folder that was there before mergegate (the ``FollowUpConflict`` case) says
nothing about this candidate, whatever its ``state.yaml`` claims. So the
store's record must say the follow-up was materialized (``created``), and the
file must name the candidate and the follow-up it was written for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from mergegate.statemachine import (
    BlockedRecord,
    FollowUpState,
    InvalidInput,
    MergegateError,
    Resolver,
)

from .contain import check_inside
from .fsio import read_regular
from .paths import todo_path
from .text import one_line
from .todo_text import STATE_DONE

__all__ = [
    "RESOLVED_FIELD",
    "AllResolved",
    "AnyResolved",
    "CallableResolver",
    "FolderRemovedResolver",
    "RoadmapGoneResolver",
    "StateFileResolver",
]

#: The state.yaml key naming the occurrence a ``done`` answers. A done without it
#: answers the first occurrence only: a hand edit made before a second block of
#: the same sha must not let that second block through.
RESOLVED_FIELD = "resolved_occurrence"


def _stale(data: dict[Any, Any], record: BlockedRecord) -> str | None:
    """Why a ``done`` in ``data`` does not answer ``record``'s latest occurrence, or ``None``."""
    answered = data.get(RESOLVED_FIELD, 1)
    if not isinstance(answered, int) or isinstance(answered, bool) or answered < 1:
        return f"{RESOLVED_FIELD} is {one_line(repr(answered), limit=40)}, not an occurrence number"
    if answered != record.occurrences:
        return (
            f"status done answers occurrence {answered}, but the candidate was blocked "
            f"{record.occurrences} time(s); mark it done again once the latest block is fixed"
        )
    return None


def _not_created(record: BlockedRecord) -> str | None:
    fu = record.follow_up_slug
    match record.follow_up_state:
        case FollowUpState.CREATED:
            return None
        case FollowUpState.PENDING:
            return f"follow-up {fu} is not created yet; sync the follow-ups first"
        case FollowUpState.FAILED:
            error = one_line(record.follow_up_error or "unknown error", limit=160)
            return (
                f"follow-up {fu} was never created by mergegate ({error}); a folder "
                "mergegate did not create cannot resolve it: move it away and sync the follow-ups"
            )


def _unlinked(data: dict[Any, Any], record: BlockedRecord) -> str | None:
    """Why ``data`` (a parsed state.yaml) does not link ``record``, or ``None`` if it does."""
    key = record.key
    source = data.get("source")
    found = {
        "follow_up": data.get("follow_up"),
        "source.slug": source.get("slug") if isinstance(source, dict) else None,
        "source.branch": source.get("branch") if isinstance(source, dict) else None,
        "source.sha": source.get("sha") if isinstance(source, dict) else None,
    }
    expected = {
        "follow_up": record.follow_up_slug,
        "source.slug": key.slug,
        "source.branch": key.branch,
        "source.sha": key.sha,
    }
    for name, value in expected.items():
        if found[name] != value:
            shown = one_line(repr(found[name]), limit=60)
            return f"{name} is {shown}, not {value!r}: it is not this candidate's follow-up"
    return None


@attrs.frozen
class StateFileResolver:
    """Implements ``Resolver``: resolved iff the follow-up was created by mergegate, its
    ``<todos_root>/<follow_up>/state.yaml`` links this candidate, and it says done.

    ``boundary``, when given (the CLI gives the repository root), is the folder
    the todos folder must resolve inside.
    """

    todos_root: Path = attrs.field(converter=Path)
    boundary: Path | None = attrs.field(
        default=None, converter=attrs.converters.optional(Path), kw_only=True
    )

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """``None`` when the follow-up is resolved; otherwise a few words (one line) saying why.

        Unresolved: the store does not record the follow-up as created (it is
        pending, or failed, for instance because a foreign folder held its
        name); the folder or its state.yaml is missing, unreadable, a symlink or
        outside the todos folder; the YAML does not parse or is not a mapping;
        its ``follow_up`` or ``source`` (slug, branch, sha) is not this
        record's; or its status is not ``done``. Never raises for what it finds on disk.
        """
        not_created = _not_created(record)
        if not_created is not None:
            return not_created
        name = str(self.todos_root / record.follow_up_slug)
        try:
            if self.boundary is not None:
                check_inside(self.boundary, self.todos_root, "todos")
            folder = todo_path(self.todos_root, record.follow_up_slug)
        except MergegateError as err:
            return f"follow-up folder is not usable: {err}"
        if not folder.is_dir():
            return f"follow-up folder {name} is missing"
        try:
            raw = read_regular(folder / "state.yaml")
            text = None if raw is None else raw.decode("utf-8")
        except MergegateError as err:
            return f"{name}/state.yaml is not usable: {err}"
        except (OSError, UnicodeDecodeError) as err:
            return f"{name}/state.yaml cannot be read ({type(err).__name__})"
        if text is None:
            return f"{name}/state.yaml is missing"
        # Imported here: importing the package (every command does) must not load ruamel.
        from ruamel.yaml import YAML  # noqa: PLC0415
        from ruamel.yaml.error import YAMLError  # noqa: PLC0415

        try:
            data: Any = YAML(typ="safe", pure=True).load(text)
        except YAMLError:
            return f"{name}/state.yaml is not valid YAML"
        if not isinstance(data, dict):
            return f"{name}/state.yaml is not a mapping"
        unlinked = _unlinked(data, record)
        if unlinked is not None:
            return f"{name}/state.yaml: {unlinked}"
        status = data.get("status")
        if status != STATE_DONE:
            return f"{name}/state.yaml has status {status!r}, not {STATE_DONE!r}"
        stale = _stale(data, record)
        if stale is not None:
            return f"{name}/state.yaml: {stale}"
        return None


@attrs.frozen
class FolderRemovedResolver:
    """Implements ``Resolver``: resolved iff mergegate created the follow-up and its folder is
    gone, as in a project that deletes a todo folder once it is delivered.

    A new block of the same sha creates the folder again (the follow-up is
    re-queued), which closes the gate until it is removed again.
    """

    todos_root: Path = attrs.field(converter=Path)

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """``None`` once the folder is removed; otherwise why not, in one line."""
        not_created = _not_created(record)
        if not_created is not None:
            return not_created
        try:
            folder = todo_path(self.todos_root, record.follow_up_slug)
        except MergegateError as err:
            return f"follow-up folder is not usable: {err}"
        if folder.exists() or folder.is_symlink():
            return f"follow-up folder {folder} still exists; it is removed when the work is done"
        return None


@attrs.frozen
class RoadmapGoneResolver:
    """Implements ``Resolver``: resolved iff mergegate created the follow-up and its roadmap
    entry is gone. A new block of the same sha adds the entry again."""

    roadmap: Path = attrs.field(converter=Path)

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """``None`` once the roadmap has no entry for the follow-up; otherwise why not."""
        not_created = _not_created(record)
        if not_created is not None:
            return not_created
        from .roadmap import roadmap_slugs  # noqa: PLC0415  (loads ruamel)

        try:
            slugs = roadmap_slugs(self.roadmap)
        except MergegateError as err:
            return f"roadmap {self.roadmap} is not usable: {err}"
        if record.follow_up_slug in slugs:
            return f"roadmap {self.roadmap} still lists {record.follow_up_slug}"
        return None


@attrs.frozen
class CallableResolver:
    """Implements ``Resolver`` with an embedder's function: ``rule(record)`` returns ``None``
    when resolved, else why not. Its answer is cut to one line."""

    rule: Callable[[BlockedRecord], str | None]

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """What ``rule`` says, as one line (``None`` passes through)."""
        why = self.rule(record)
        return None if why is None else one_line(str(why), limit=200)


def _rules(value: Sequence[Resolver]) -> tuple[Resolver, ...]:
    rules = tuple(value)
    if not rules:
        raise InvalidInput("resolved rules", rules, "give at least one rule to combine")
    for rule in rules:
        if not callable(getattr(rule, "unresolved_reason", None)):
            raise InvalidInput("resolved rule", rule, "give a Resolver (unresolved_reason)")
    return rules


@attrs.frozen
class AnyResolved:
    """Implements ``Resolver``: resolved as soon as one of ``rules`` says so (a host that
    counts "folder removed" or "state done" alike); unresolved says why for each, joined."""

    rules: tuple[Resolver, ...] = attrs.field(converter=_rules)

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """``None`` if any rule passes; else every rule's reason, in order, joined by "; or "."""
        reasons = []
        for rule in self.rules:
            why = rule.unresolved_reason(record)
            if why is None:
                return None
            reasons.append(why)
        return one_line("; or ".join(reasons), limit=400)


@attrs.frozen
class AllResolved:
    """Implements ``Resolver``: resolved only when every one of ``rules`` says so;
    unresolved gives the first rule's reason that holds it back."""

    rules: tuple[Resolver, ...] = attrs.field(converter=_rules)

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """The first rule's reason that is not ``None``, or ``None`` when all pass."""
        for rule in self.rules:
            why = rule.unresolved_reason(record)
            if why is not None:
                return why
        return None
