"""The configurable command templates that guidance and ``input.md`` print.

An embedding orchestrator replaces them with its own commands. Each template
is checked when the templates are built, so a typo fails at start-up, not in
the middle of a blocked apply.
"""

from __future__ import annotations

import shlex
import string
from typing import Any

import attrs

from mergegate.statemachine import Action, Approve, CandidateKey, MarkDone, Resume

from .errors import InvalidTemplate

__all__ = ["PLACEHOLDERS", "GuidanceTemplates"]

PLACEHOLDERS: tuple[str, ...] = ("slug", "branch", "sha", "follow_up")


def _check_template(instance: object, attribute: Any, value: object) -> None:
    name = attribute.name
    if not isinstance(value, str) or not value.strip():
        raise InvalidTemplate(name, str(value), "give a non-empty command", PLACEHOLDERS)
    if value.splitlines() != [value]:
        # A newline would let a template print a line of its own, such as a fake NEXT: line.
        raise InvalidTemplate(name, value, "it spans several lines", PLACEHOLDERS)
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as err:
        raise InvalidTemplate(
            name, value, f"it is not a format string ({err})", PLACEHOLDERS
        ) from None
    for _text, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in PLACEHOLDERS:
            raise InvalidTemplate(name, value, f"unknown placeholder {{{field}}}", PLACEHOLDERS)
        if spec or conversion:
            # Values are shell-quoted; a format spec or conversion would apply around the quotes.
            raise InvalidTemplate(
                name,
                value,
                f"placeholder {{{field}}} has a conversion or format spec",
                PLACEHOLDERS,
            )


@attrs.frozen
class GuidanceTemplates:
    """``str.format`` command templates; every substituted value is shell-quoted.

    Placeholders: ``{slug}``, ``{branch}``, ``{sha}`` (the full candidate sha)
    and ``{follow_up}`` (the follow-up slug). Raises InvalidTemplate for an
    unknown placeholder, a conversion or format spec, an empty template or one
    that spans several lines.
    """

    remediate: str = attrs.field(default="mergegate remediate {slug}", validator=_check_template)
    resume: str = attrs.field(default="mergegate resume {slug}", validator=_check_template)
    apply: str = attrs.field(default="mergegate apply {slug}", validator=_check_template)
    show: str = attrs.field(default="mergegate show {slug}", validator=_check_template)
    sync: str = attrs.field(default="mergegate followups sync", validator=_check_template)
    done: str = attrs.field(
        default="mergegate followups done {follow_up}", validator=_check_template
    )
    #: The operator's approval of a change to the configuration (``config_changed``);
    #: the ``...`` is where the operator says why, and is logged as said.
    approve: str = attrs.field(
        default='mergegate approve {slug} --sha {sha} --why "..."', validator=_check_template
    )

    def command(self, name: str, key: CandidateKey, follow_up: str) -> str:
        """The template ``name`` filled in for ``key`` and its follow-up, values shell-quoted."""
        template: str = getattr(self, name)
        values = {
            "slug": key.slug,
            "branch": key.branch,
            "sha": key.sha,
            "follow_up": follow_up,
        }
        return template.format(**{k: shlex.quote(v) for k, v in values.items()})

    def render(self, action: Action, key: CandidateKey, follow_up: str) -> str:
        """``action`` as a command line: its template (``action.name``) filled in.

        ``key`` and ``follow_up`` fill the placeholders an action does not carry
        (a :class:`Sync` names no candidate, yet its template may); an action's
        own arguments win, so the command always names what the action names.
        ``{sha}`` is the candidate's sha as blocked (``Resume.blocked_sha``): the
        sha to resume at is the branch tip once the fix is pushed, which no
        text rendered at block time can know.
        """
        if isinstance(action, Resume):
            key = CandidateKey(action.slug, action.branch, action.blocked_sha)
        elif isinstance(action, Approve):
            key = CandidateKey(action.slug, key.branch, action.sha)
        elif hasattr(action, "slug"):
            key = CandidateKey(action.slug, key.branch, key.sha)
        if isinstance(action, MarkDone):
            follow_up = action.follow_up
        return self.command(action.name, key, follow_up)
