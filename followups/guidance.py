"""Resume guidance: deterministic text built from the stored candidate and blocked record.

The text has an uppercase code line, two factual sentences and ``NEXT:`` lines
holding exact commands, the last of which is the resume command. It reads no
clock, no counter and no evidence text, so replaying a block returns the very
same guidance: the report's free-text detail stays in ``input.md`` and in
``mergegate show``, because it may carry times (an interrupted apply's detail
names when its lease expired).
"""

from __future__ import annotations

import attrs

from mergegate.statemachine import (
    BlockedRecord,
    Candidate,
    FollowUpState,
    Guidance,
    InvalidInput,
    State,
)

from .templates import GuidanceTemplates
from .text import one_line

__all__ = ["CODE_BLOCKED", "CODE_FOLLOWUP_FAILED", "CODE_FOLLOWUP_PENDING", "FollowUpGuide"]

CODE_BLOCKED = "INTEGRATION_BLOCKED"
CODE_FOLLOWUP_PENDING = "INTEGRATION_BLOCKED_FOLLOWUP_PENDING"
CODE_FOLLOWUP_FAILED = "INTEGRATION_BLOCKED_FOLLOWUP_FAILED"


def _check_label(_instance: object, _attribute: object, value: str) -> None:
    if one_line(value) != value or not value:
        raise InvalidInput("todos label", value, "use one printable line, such as 'todos'")


@attrs.frozen
class FollowUpGuide:
    """Implements ``Guide``: renders the guidance of a blocked candidate from its record.

    ``todos_label`` is how the text names the todos folder: keep it relative,
    so the text does not depend on the machine it was rendered on.
    """

    templates: GuidanceTemplates = attrs.field(factory=GuidanceTemplates)
    todos_label: str = attrs.field(default="todos", validator=_check_label)

    def render(self, candidate: Candidate, record: BlockedRecord) -> Guidance:
        """The guidance for ``candidate``, blocked as ``record`` says; a pure function of both.

        The code line says whether the follow-up todo exists (``INTEGRATION_BLOCKED``),
        is still queued (``..._FOLLOWUP_PENDING``) or could not be created
        (``..._FOLLOWUP_FAILED``). When it does not exist, the first ``NEXT:``
        line is the sync command that creates it. The remediate command is left
        out once the candidate is already remediating. The resume command is last.
        """
        key, fu, t = record.key, record.follow_up_slug, self.templates

        def cmd(name: str) -> str:
            return t.command(name, key, fu)

        where = (
            f"Candidate {key.slug} ({one_line(key.branch)}@{key.sha[:7]}) is blocked: "
            f"{record.reason.value} against main {record.main_sha[:7]}."
        )
        commands: list[str] = []
        match record.follow_up_state:
            case FollowUpState.CREATED:
                code = CODE_BLOCKED
                evidence = (
                    f"Evidence is in {self.todos_label}/{fu}/input.md and from {cmd('show')}; "
                    f"the follow-up todo is {fu}."
                )
            case FollowUpState.PENDING:
                code = CODE_FOLLOWUP_PENDING
                evidence = (
                    f"Evidence is stored ({cmd('show')}); the follow-up todo {fu} "
                    f"is not created yet, and {cmd('sync')} creates it."
                )
                commands.append(cmd("sync"))
            case FollowUpState.FAILED:
                code = CODE_FOLLOWUP_FAILED
                error = one_line(record.follow_up_error or "unknown error")
                evidence = (
                    f"Evidence is stored ({cmd('show')}), but the follow-up todo {fu} "
                    f"could not be created: {error}"
                )
                commands.append(cmd("sync"))
        if candidate.state is not State.REMEDIATING:
            commands.append(cmd("remediate"))
        commands.append(cmd("resume"))
        return Guidance(code=code, facts=(where, evidence), next_commands=tuple(commands))
