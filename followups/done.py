"""Marking a follow-up resolved, as a command instead of a hand edit.

Each resolved rule has its own way of being satisfied: ``state.yaml`` says
``status: done`` for the latest occurrence, the folder is removed, or the
roadmap entry is removed. :func:`mark_done` does the one the rule names, after
the same checks the rule makes (mergegate created the follow-up, its files link
this candidate), so it never marks a folder it did not write.
"""

from __future__ import annotations

import enum
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

from mergegate.statemachine import BlockedRecord, InvalidInput, MergegateError, Resolver

from .contain import check_inside
from .errors import FollowUpError
from .fsio import read_regular, replace_file
from .paths import todo_path
from .resolver import (
    RESOLVED_FIELD,
    AllResolved,
    AnyResolved,
    FolderRemovedResolver,
    RoadmapGoneResolver,
    StateFileResolver,
    _not_created,
    _unlinked,
)
from .todo_text import STATE_DONE

__all__ = ["Combine", "ResolvedRule", "ResolvedRules", "mark_done", "resolver_for"]

#: How several resolved rules combine: ``any`` one of them will do, or ``all`` must hold.
Combine = Literal["any", "all"]


class ResolvedRule(enum.StrEnum):
    """The resolved rules the command line offers (``resolved`` in mergegate.toml)."""

    STATE_DONE = "state-done"
    FOLDER_REMOVED = "folder-removed"
    ROADMAP_GONE = "roadmap-gone"


def _rules(value: Sequence[ResolvedRule | str]) -> tuple[ResolvedRule, ...]:
    if isinstance(value, str):
        value = [value]
    rules: list[ResolvedRule] = []
    for name in value:
        try:
            rule = ResolvedRule(name)
        except ValueError:
            raise InvalidInput(
                "resolved rule", name, "use state-done, folder-removed or roadmap-gone"
            ) from None
        if rule in rules:
            raise InvalidInput("resolved rules", list(value), f"{rule.value} is named twice")
        rules.append(rule)
    if not rules:
        raise InvalidInput("resolved rules", list(value), "give at least one rule")
    return tuple(rules)


def _check_combine(_instance: object, _attribute: object, value: object) -> None:
    if value not in ("any", "all"):
        raise InvalidInput("resolved combine", value, "use any or all")


@attrs.frozen
class ResolvedRules:
    """Several resolved rules combined, as configuration names them (``resolved = [...]``).

    ``combine`` ``any``: resolved as soon as one rule holds, and ``followups
    done`` satisfies the first; ``all``: every rule must hold, and ``done``
    satisfies each, in order. ``all`` of ``state-done`` and ``folder-removed``
    could never hold (a removed folder has no state.yaml) and is refused, like
    an unknown, repeated or missing rule (InvalidInput).
    """

    rules: tuple[ResolvedRule, ...] = attrs.field(converter=_rules)
    combine: Combine = attrs.field(default="any", validator=_check_combine)

    def __attrs_post_init__(self) -> None:
        both = {ResolvedRule.STATE_DONE, ResolvedRule.FOLDER_REMOVED}
        if self.combine == "all" and both <= set(self.rules):
            raise InvalidInput(
                "resolved rules",
                [r.value for r in self.rules],
                "state-done and folder-removed cannot both hold (a removed folder has no "
                "state.yaml); combine them with any",
            )

    @property
    def value(self) -> str:
        """The rules as one line: ``state-done``, ``state-done or folder-removed``, ``a and b``."""
        joiner = " or " if self.combine == "any" else " and "
        return joiner.join(r.value for r in self.rules)

    def marked(self) -> tuple[ResolvedRule, ...]:
        """The rules ``mark_done`` satisfies: the first of ``any``, every one of ``all``."""
        return self.rules[:1] if self.combine == "any" else self.rules


class NotMarkable(FollowUpError, ValueError):
    """The follow-up cannot be marked done: it is not mergegate's, or not this candidate's."""

    follow_up_slug: str

    def __init__(self, follow_up_slug: str, problem: str) -> None:
        super().__init__(
            f"follow-up {follow_up_slug} cannot be marked done: {problem}",
            follow_up_slug=follow_up_slug,
        )


def _state_data(folder: Path, record: BlockedRecord) -> tuple[str, dict[Any, Any]]:
    fu = record.follow_up_slug
    raw = read_regular(folder / "state.yaml")
    if raw is None:
        raise NotMarkable(fu, f"{folder}/state.yaml is missing")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotMarkable(fu, f"{folder}/state.yaml is not UTF-8 text") from None
    from ruamel.yaml import YAML  # noqa: PLC0415
    from ruamel.yaml.error import YAMLError  # noqa: PLC0415

    try:
        data: Any = YAML(typ="safe", pure=True).load(text)
    except YAMLError:
        raise NotMarkable(fu, f"{folder}/state.yaml is not valid YAML") from None
    if not isinstance(data, dict):
        raise NotMarkable(fu, f"{folder}/state.yaml is not a mapping")
    unlinked = _unlinked(data, record)
    if unlinked is not None:
        raise NotMarkable(fu, f"{folder}/state.yaml: {unlinked}")
    return text, data


def _done_text(text: str, occurrence: int) -> str:
    """``text`` with its top-level status set to done and the answered occurrence recorded.

    Line edits, not a re-dump, so a human's comments and notes stay as written.
    """
    kept = [
        line for line in text.splitlines() if not line.startswith((f"{RESOLVED_FIELD}:", "status:"))
    ]
    head = [ln for ln in kept if ln.startswith("#")]
    body = [ln for ln in kept if not ln.startswith("#")]
    lines = [*head, f"status: {STATE_DONE}", f"{RESOLVED_FIELD}: {occurrence}", *body]
    return "\n".join(lines) + "\n"


def mark_done(
    rule: ResolvedRule | ResolvedRules,
    record: BlockedRecord,
    *,
    todos_root: Path,
    roadmap: Path | None,
    boundary: Path | None = None,
) -> str:
    """Satisfy ``rule`` for ``record``'s follow-up; return what was done, in one line.

    Several rules (:class:`ResolvedRules`): the first of ``any``, each of
    ``all`` in order (its lines joined by ``; ``). Raises NotMarkable, writing
    nothing, when mergegate did not create the follow-up or its state.yaml
    does not link this candidate, and PathOutsideRepository when a path
    resolves outside ``boundary``. Idempotent: marking it again changes nothing.
    """
    if isinstance(rule, ResolvedRules):
        # Removal last: a state-done or roadmap-gone rule still needs the folder's state.yaml.
        order = sorted(rule.marked(), key=lambda r: r is ResolvedRule.FOLDER_REMOVED)
        return "; ".join(
            _mark_one(r, record, todos_root=todos_root, roadmap=roadmap, boundary=boundary)
            for r in order
        )
    return _mark_one(rule, record, todos_root=todos_root, roadmap=roadmap, boundary=boundary)


def _mark_one(
    rule: ResolvedRule,
    record: BlockedRecord,
    *,
    todos_root: Path,
    roadmap: Path | None,
    boundary: Path | None,
) -> str:
    fu = record.follow_up_slug
    why_not = _not_created(record)
    if why_not is not None:
        raise NotMarkable(fu, why_not)
    if boundary is not None:
        check_inside(boundary, todos_root, "todos")
        if roadmap is not None:
            check_inside(boundary, roadmap, "roadmap")
    try:
        folder = todo_path(todos_root, fu)
    except MergegateError as err:
        raise NotMarkable(fu, str(err)) from None
    if rule is ResolvedRule.ROADMAP_GONE:
        if roadmap is None:
            raise NotMarkable(fu, "the roadmap-gone rule needs a roadmap, and none is configured")
        from .roadmap import remove_roadmap_entry  # noqa: PLC0415  (loads ruamel)

        removed = remove_roadmap_entry(roadmap, fu)
        return f"removed {fu} from {roadmap}" if removed else f"{roadmap} no longer lists {fu}"
    if not folder.is_dir():
        if rule is ResolvedRule.FOLDER_REMOVED and not folder.is_symlink():
            return f"{folder} is already removed"
        raise NotMarkable(fu, f"follow-up folder {folder} is missing")
    text, _data = _state_data(folder, record)
    if rule is ResolvedRule.FOLDER_REMOVED:
        shutil.rmtree(folder)
        return f"removed {folder}"
    if rule is not ResolvedRule.STATE_DONE:  # pragma: no cover - the enum has three members
        raise InvalidInput(
            "resolved rule", str(rule), "use state-done, folder-removed or roadmap-gone"
        )
    replace_file(folder / "state.yaml", _done_text(text, record.occurrences))
    return f"{folder}/state.yaml: status {STATE_DONE} (occurrence {record.occurrences})"


def resolver_for(
    rules: Sequence[ResolvedRule | str] | ResolvedRules,
    *,
    todos_root: Path,
    roadmap: Path | None = None,
    combine: Combine = "any",
    boundary: Path | None = None,
) -> Resolver:
    """The resolver that configuration names: one rule, or several combined.

    ``rules`` are rule names (``state-done``, ``folder-removed``,
    ``roadmap-gone``), or a :class:`ResolvedRules` (which brings its own
    ``combine``); ``combine`` is ``any`` (one of them will do, as a host that
    counts "folder removed" or "state done" alike) or ``all``. Raises
    InvalidInput, naming the choices, for an unknown rule or combination, no
    rule at all, or ``roadmap-gone`` without a roadmap.
    """
    chosen = rules if isinstance(rules, ResolvedRules) else ResolvedRules(rules, combine)
    built: list[Resolver] = []
    for rule in chosen.rules:
        if rule is ResolvedRule.STATE_DONE:
            built.append(StateFileResolver(todos_root, boundary=boundary))
        elif rule is ResolvedRule.FOLDER_REMOVED:
            built.append(FolderRemovedResolver(todos_root))
        elif roadmap is None:
            raise InvalidInput("resolved rule", rule.value, "roadmap-gone needs a roadmap")
        else:
            built.append(RoadmapGoneResolver(roadmap))
    if len(built) == 1:
        return built[0]
    return AnyResolved(built) if chosen.combine == "any" else AllResolved(built)
