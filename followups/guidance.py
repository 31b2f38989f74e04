"""Resume guidance: deterministic text built from the stored candidate and blocked record.

The text has an uppercase code line, factual sentences (where the candidate is,
what failed, where the evidence is, what fixes it) and ``NEXT:`` lines holding
complete commands that, run in order from the work tree once the fix is
committed on the branch, bring the candidate to ``integrated``: remediate (unless
it is remediating already), mark the follow-up done, resume (which takes the
branch's tip), apply; for ``config_changed``, the operator's approval of the
sha in place of remediate and done (:func:`unblock_actions`). It reads no clock
and no free-text detail, only the structured evidence, so the same stored facts
give the same bytes: the detail stays in ``input.md`` and ``mergegate show``,
because it may carry times.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from mergegate.statemachine import (
    Action,
    Apply,
    Approve,
    BlockedRecord,
    BlockedReport,
    Candidate,
    FollowUpState,
    Guidance,
    InvalidInput,
    MarkDone,
    Reason,
    Remediate,
    Resume,
    Show,
    State,
    Sync,
)

from .failure import fix_sentence, what_failed
from .templates import GuidanceTemplates
from .text import one_line

__all__ = [
    "CODE_BLOCKED",
    "CODE_FOLLOWUP_FAILED",
    "CODE_FOLLOWUP_PENDING",
    "FollowUpGuide",
    "unblock_actions",
]

CODE_BLOCKED = "INTEGRATION_BLOCKED"
CODE_FOLLOWUP_PENDING = "INTEGRATION_BLOCKED_FOLLOWUP_PENDING"
CODE_FOLLOWUP_FAILED = "INTEGRATION_BLOCKED_FOLLOWUP_FAILED"


def unblock_actions(record: BlockedRecord, *, remediating: bool = False) -> tuple[Action, ...]:
    """The steps that settle ``record``'s block once its fix is made, in order.

    A ``config_changed`` block: the operator's approval of the sha (which moves
    the candidate to remediating, and settles the block, not the todo), resume,
    apply. Any other: remediate (unless ``remediating`` already), mark the
    follow-up done, resume, apply. The guidance prints them as its ``NEXT:``
    lines (after a sync when the follow-up is not created), and the follow-up's
    todo files print the same commands.
    """
    key = record.key
    steps: list[Action] = []
    if record.reason is Reason.CONFIG_CHANGED:
        steps.append(Approve(key.slug, key.sha))
    else:
        if not remediating:
            steps.append(Remediate(key.slug))
        steps.append(MarkDone(key.slug, record.follow_up_slug))
    steps.extend((Resume(key.slug, key.branch, key.sha), Apply(key.slug)))
    return tuple(steps)


def _check_label(_instance: object, _attribute: object, value: str) -> None:
    if one_line(value) != value or not value:
        raise InvalidInput("todos label", value, "use one printable line, such as 'todos'")


@attrs.frozen
class FollowUpGuide:
    """Implements ``Guide``: renders the guidance of a blocked candidate from its record.

    ``todos_label`` is how the text names the todos folder: keep it relative,
    so the text does not depend on the machine it was rendered on. ``evidence``
    reads the latest report of a blocked record (the CLI reads the store's last
    occurrence); without it, the text says what failed only by reason code.
    """

    templates: GuidanceTemplates = attrs.field(factory=GuidanceTemplates)
    todos_label: str = attrs.field(default="todos", validator=_check_label)
    evidence: Callable[[BlockedRecord], BlockedReport | None] | None = attrs.field(
        default=None, eq=False, kw_only=True
    )
    #: The file of the follow-up folder that holds the evidence, as the scaffold
    #: writes it (``Scaffold.evidence_file``); ``None``: the folder holds none, and
    #: the text points at the stored evidence only.
    evidence_file: str | None = attrs.field(default="input.md", kw_only=True)
    #: The remote's main as a developer's clone names it (``origin/main``) when
    #: mergegate integrates into a remote; the fix sentence then names it and the
    #: fetch that brings it (``fix_sentence``). ``None``: the repository's own main.
    upstream: str | None = attrs.field(default=None, kw_only=True)

    def render(self, candidate: Candidate, record: BlockedRecord) -> Guidance:
        """The guidance for ``candidate``, blocked as ``record`` says; a pure function of both
        (and of the stored evidence ``evidence`` reads).

        The code line says whether the follow-up todo exists (``INTEGRATION_BLOCKED``),
        is still queued (``..._FOLLOWUP_PENDING``) or could not be created
        (``..._FOLLOWUP_FAILED``). When it does not exist, the first ``NEXT:``
        line is the sync command that creates it. The remediate command is left
        out once the candidate is already remediating. Then come the done,
        resume and apply commands; ``resume_at`` points at the resume command.
        """
        key, fu, t = record.key, record.follow_up_slug, self.templates

        def cmd(action: Action) -> str:
            return t.render(action, key, fu)

        # No occurrence count and no time: a replay of the same failure prints the same text.
        blocked = f"{record.reason.value} against main {record.main_sha[:12]}"
        ident = f"{key.slug} ({one_line(key.branch)}@{key.sha[:12]})"
        if candidate.state is State.REMEDIATING:
            where = f"Candidate {ident} is being remediated; it was blocked: {blocked}."
        else:
            where = f"Candidate {ident} is blocked: {blocked}."
        show = cmd(Show(key.slug))
        report = None if self.evidence is None else self.evidence(record)
        failed = f"What failed: {record.reason.value}." if report is None else what_failed(report)
        actions: list[Action] = []
        match record.follow_up_state:
            case FollowUpState.CREATED:
                code = CODE_BLOCKED
                if self.evidence_file is None:
                    evidence = f"Evidence is stored ({show}); the follow-up todo is {fu}."
                else:
                    evidence = (
                        f"Evidence is in {self.todos_label}/{fu}/{self.evidence_file} "
                        f"and from {show}; the follow-up todo is {fu}."
                    )
            case FollowUpState.PENDING:
                code = CODE_FOLLOWUP_PENDING
                evidence = (
                    f"Evidence is stored ({show}); the follow-up todo {fu} "
                    f"is not created yet, and {cmd(Sync())} creates it."
                )
                actions.append(Sync())
            case FollowUpState.FAILED:
                code = CODE_FOLLOWUP_FAILED
                error = one_line(record.follow_up_error or "unknown error")
                evidence = (
                    f"Evidence is stored ({show}), but the follow-up todo {fu} "
                    f"could not be created: {error}"
                )
                actions.append(Sync())
        actions.extend(unblock_actions(record, remediating=candidate.state is State.REMEDIATING))
        facts = (where, failed, evidence, fix_sentence(record.reason, key, self.upstream))
        return Guidance(
            code=code,
            facts=facts,
            next_commands=tuple(cmd(a) for a in actions),
            resume_at=-2,
            actions=tuple(actions),
        )
