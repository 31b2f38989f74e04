"""The one wiring factory: an Engine with its follow-up hook, guide and resolver.

Every embedder (the CLI, the docs, the demo, the tests) builds its Engine with
:func:`build_engine` from a :class:`Wiring`, so the follow-up hook, the guide
and the resolver always agree on the todos folder, the templates and the
scaffold. Replace a part through the configuration, not by wiring by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs

from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    Engine,
    Guide,
    HookLike,
    InvalidInput,
    Resolver,
    SlugRule,
    Store,
    follow_up_slug,
)

from .guidance import FollowUpGuide
from .materialize import FollowUps
from .outbox import FollowUpHook
from .paths import DEFAULT_GROUP
from .resolver import StateFileResolver
from .scaffold import Scaffold, TodoScaffold
from .templates import GuidanceTemplates

__all__ = ["Wiring", "build_engine"]


def _check_scaffold(_wiring: object, _attribute: object, value: Scaffold | None) -> None:
    # The type checker catches a missing evidence_file; an untyped caller is
    # told here, before any guidance names a file the scaffold never writes.
    if value is not None and not hasattr(value, "evidence_file"):
        raise InvalidInput(
            "scaffold",
            type(value).__name__,
            "give it evidence_file: the file of its folder the guidance names, or None",
        )


@attrs.frozen
class Wiring:
    """Where follow-ups go and which parts write, describe and resolve them.

    ``todos_root`` is the todos folder; ``roadmap`` defaults to
    ``<todos_root>/roadmap.yaml``, and ``None`` keeps no roadmap (no file, no
    lock: a host that orders its work elsewhere); ``group`` ``None`` writes roadmap entries
    without a group. ``todos_label`` is how the guidance names the todos folder
    (keep it relative: the text must not depend on the machine). ``boundary``
    (the CLI gives the repository root) is the folder every path must resolve
    inside. ``scaffold`` (default :class:`TodoScaffold` with ``templates``),
    ``resolver`` (default :class:`StateFileResolver` on ``todos_root``) and
    ``slug_rule`` (default :func:`follow_up_slug`) are the pluggable parts.
    ``follow_up_hook`` ``False`` leaves follow-ups to :func:`drain` alone.
    """

    todos_root: Path = attrs.field(converter=Path)
    roadmap: Path | None = attrs.field(
        default=attrs.Factory(lambda w: w.todos_root / "roadmap.yaml", takes_self=True),
        converter=attrs.converters.optional(Path),
    )
    group: str | None = DEFAULT_GROUP
    templates: GuidanceTemplates = attrs.field(factory=GuidanceTemplates)
    todos_label: str = "todos"
    boundary: Path | None = attrs.field(default=None, converter=attrs.converters.optional(Path))
    scaffold: Scaffold | None = attrs.field(default=None, validator=_check_scaffold)
    resolver: Resolver | None = None
    #: A guide of your own (e.g. a FollowUpGuide with ``evidence=``); default: :meth:`guide`.
    custom_guide: Guide | None = None
    slug_rule: SlugRule = follow_up_slug
    follow_up_hook: bool = True

    def followups(self) -> FollowUps:
        """The follow-up writer: todos folder, roadmap, group, templates and scaffold."""
        scaffold = self.scaffold if self.scaffold is not None else TodoScaffold(self.templates)
        return FollowUps(
            self.todos_root,
            roadmap=self.roadmap,
            group=self.group,
            templates=self.templates,
            boundary=self.boundary,
            scaffold=scaffold,
        )

    def guide(self, store: Store | None = None) -> FollowUpGuide:
        """The guidance renderer, naming the todos folder as ``todos_label`` and the
        scaffold's evidence file; with ``store``, "What failed" reads the latest
        stored report (paths, checks), as the CLI's does."""
        scaffold = self.scaffold if self.scaffold is not None else TodoScaffold(self.templates)
        return FollowUpGuide(
            self.templates,
            todos_label=self.todos_label,
            evidence=None if store is None else _LatestReport(store),
            evidence_file=scaffold.evidence_file,
        )

    def active_resolver(self) -> Resolver:
        """``resolver``, or the default rule: the follow-up's ``state.yaml`` says done."""
        if self.resolver is not None:
            return self.resolver
        return StateFileResolver(self.todos_root, boundary=self.boundary)


def build_engine(
    store: Store,
    wiring: Wiring,
    *,
    hooks: Sequence[HookLike] = (),
    hooks_before: Sequence[HookLike] = (),
    actor: str = "mergegate",
    lease_name: str = "main",
    lease_ttl: timedelta = timedelta(minutes=10),
    clock: Callable[[], datetime] | None = None,
) -> Engine:
    """An Engine on ``store`` with the follow-up hook, guide, resolver and slug rule of ``wiring``.

    ``hooks`` run after the follow-up hook, so they see the outcome with its
    follow-up materialized (or its failure recorded); ``hooks_before`` run
    before it (a fault injector, a reporter that must see the outcome first). Raises what the Engine
    raises for a hook that is not one (InvalidInput), and InvalidInput or
    InvalidTemplate for a bad group, label or template.
    """
    chain: list[HookLike] = list(hooks_before)
    if wiring.follow_up_hook:
        chain.append(FollowUpHook(store, wiring.followups()))
    chain.extend(hooks)
    return Engine(
        store,
        hooks=chain,
        guide=wiring.custom_guide if wiring.custom_guide is not None else wiring.guide(store),
        resolver=wiring.active_resolver(),
        actor=actor,
        lease_name=lease_name,
        lease_ttl=lease_ttl,
        follow_up_slug=wiring.slug_rule,
        clock=clock if clock is not None else _utcnow,
    )


@attrs.frozen
class _LatestReport:
    """Reads a blocked record's latest report from the store (the guide's ``evidence``)."""

    store: Store

    def __call__(self, record: BlockedRecord) -> BlockedReport | None:
        occurrences = self.store.occurrences(record.id)
        return occurrences[-1].report if occurrences else None


def _utcnow() -> datetime:
    return datetime.now(UTC)
