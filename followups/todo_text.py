"""The text of the six files of a follow-up todo folder.

Every file is a pure function of the blocked record, the report and the
templates: no clock, no randomness. The same record always renders the same
bytes, which is what lets a replay compare folders byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mergegate.statemachine import (
    Action,
    Approve,
    BlockedRecord,
    BlockedReport,
    CheckResult,
    InvalidInput,
    MarkDone,
    Reason,
    Remediate,
    Resume,
)

from .guidance import unblock_actions
from .templates import GuidanceTemplates
from .text import code_span, fenced, yaml_quoted

__all__ = ["STATE_DONE", "STATE_OPEN", "TODO_FILES", "check_extras", "render_todo"]

TODO_FILES: tuple[str, ...] = (
    "requirements.md",
    "implementation-plan.md",
    "quality-checklist.md",
    "input.md",
    "demo.md",
    "state.yaml",
)
STATE_OPEN = "open"
STATE_DONE = "done"

_WHAT_TO_DO: dict[Reason, str] = {
    Reason.MERGE_CONFLICT: (
        "Merge the current `main` into the branch (or rebase onto it), resolve the "
        "conflicts in the paths listed above, run the checks, and push the result."
    ),
    Reason.CHECKS_FAILED: (
        "Reproduce the failing checks listed above on the branch merged with the "
        "current `main`, fix them, and push the fix."
    ),
    Reason.MAIN_MOVED: (
        "`main` moved while the apply ran, every time it was tried. Find what keeps "
        "advancing `main` (another integrator, a direct push) and stop it; the "
        "branch itself may need no change."
    ),
    Reason.PRECONDITION_FAILED: (
        "Fix the precondition named in the diagnostic above (a missing commit, a "
        "branch that does not contain the sha, a dirty repository), then retry."
    ),
    Reason.APPLY_INTERRUPTED: (
        "The apply was interrupted: its lease expired before it finished. Check "
        "the integrator named in the lease (crash, kill, hang); the branch itself "
        "may need no change."
    ),
    Reason.PUSH_REJECTED: (
        "The server refused the update of `main`; the diagnostic above quotes its own "
        "words (a hook's message, a protection rule). Settle that refusal with whoever "
        "runs the server, or fix the branch if the refusal is about the change."
    ),
    Reason.CHECKS_TIMED_OUT: (
        "A check never started or never finished before its deadline on the CI. "
        "Look at the builder named above (its workers, a stuck step); the branch "
        "itself may need no change."
    ),
    Reason.CONFIG_CHANGED: (
        "The change edits the integrator's configuration (the diff is above), which "
        "decides the checks of every later candidate, so none of its checks ran. An "
        "operator reads the diff and, if it is right, approves this exact sha with "
        "`mergegate approve SLUG --sha SHA --why TEXT`; then resume it. The branch needs "
        "no change; a new sha needs an approval of its own."
    ),
    Reason.EXTERNAL: (
        "An external system blocked the integration. Read the detail above and "
        "settle it with that system."
    ),
}


def _linkage(record: BlockedRecord) -> list[str]:
    key = record.key
    lines = [
        f"- slug: {code_span(key.slug)}",
        f"- branch: {code_span(key.branch)}",
        f"- sha: {code_span(key.sha)}",
        f"- follow-up: {code_span(record.follow_up_slug)}",
    ]
    if record.previous_follow_up is not None:
        lines.append(f"- previous follow-up: {code_span(record.previous_follow_up)}")
    return lines


def _check(check: CheckResult) -> str:
    if check.timed_out:
        status = "timed out"
    elif check.exit_code is None:
        status = "never exited"
    else:
        status = f"exit code {check.exit_code}"
    head = f"#### {code_span(check.name)}: {status}\n\n"
    if check.step is not None:
        head += f"Failed step: {code_span(check.step)}\n\n"
    if check.url is not None:
        head += f"Build: {check.url}\n\n"
    return head + (fenced(check.output_tail) if check.output_tail else "(no output)\n")


def _evidence(report: BlockedReport) -> str:
    e = report.evidence
    parts = [f"Tested against main {code_span(report.main_sha)}.\n"]
    if e.conflicted_paths:
        paths = "\n".join(f"- {code_span(p)}" for p in e.conflicted_paths)
        parts.append(f"### Conflicted paths\n\n{paths}\n")
    if e.checks:
        parts.append("### Checks\n\n" + "\n".join(_check(c) for c in e.checks))
    if e.diagnostic is not None:
        parts.append("### Diagnostic\n\n" + fenced(e.diagnostic))
    if e.main_attempts:
        shas = "\n".join(f"- {code_span(s)}" for s in e.main_attempts)
        parts.append(f"### Main attempts\n\n{shas}\n")
    if e.files:
        files = "\n".join(f"- {code_span(p)}" for p in e.files)
        parts.append(f"### Files\n\n{files}\n")
    if e.lease_owner is not None or e.lease_since is not None:
        owner = code_span(e.lease_owner) if e.lease_owner is not None else "unknown"
        since = code_span(e.lease_since.isoformat()) if e.lease_since is not None else "unknown"
        parts.append(f"### Lease\n\n- owner: {owner}\n- since: {since}\n")
    return "\n".join(parts)


def _command(action: Action, record: BlockedRecord, t: GuidanceTemplates) -> str:
    return t.render(action, record.key, record.follow_up_slug)


def _next_lines(record: BlockedRecord, t: GuidanceTemplates) -> str:
    """The commands the guidance prints as ``NEXT:`` lines (of a blocked candidate whose
    follow-up exists), in the same order: the same actions, through the same templates."""
    return "\n".join(_command(a, record, t) for a in unblock_actions(record))


def _approval(reason: Reason) -> bool:
    """Whether an operator's approval, not the follow-up, settles a block of ``reason``."""
    return reason is Reason.CONFIG_CHANGED


def _code_fix(record: BlockedRecord) -> str:
    """Where a fix to the code goes; nothing for a block the branch needs no change for."""
    if _approval(record.reason):
        return ""
    return f" A fix to the code is a new commit on the branch {code_span(record.key.branch)}."


def _run_intent(record: BlockedRecord) -> str:
    """What the commands of input.md do, in the words of step 2."""
    if _approval(record.reason):
        return (
            "2. Once an operator has read the change, run these commands in order, from "
            "the repository's work tree, with the operator's own reason in place of the "
            "`...`: they log the approval of this exact sha (which settles the block; this "
            "follow-up needs no marking), resume the candidate and retry its integration.\n\n"
        )
    return (
        "2. Run these commands in order, from the repository's work tree: they start "
        "the remediation, mark this follow-up done, resume the candidate at the "
        "branch's tip and retry its integration.\n\n"
    )


def _input_md(record: BlockedRecord, report: BlockedReport, t: GuidanceTemplates) -> str:
    key = record.key
    detail = fenced(report.detail) if report.detail is not None else "(none)\n"
    return (
        f"# Unblock the integration of {key.slug}\n\n"
        "mergegate could not integrate this candidate into `main` and opened this "
        "follow-up. This file is its evidence.\n\n"
        "## Source\n\n" + "\n".join(_linkage(record)) + "\n\n"
        "## Reason\n\n"
        f"{code_span(report.reason.value)} against main {code_span(report.main_sha)}.\n\n"
        f"Detail:\n\n{detail}\n"
        f"## Evidence\n\n{_evidence(report)}\n"
        "## Unblock intent\n\n"
        f"1. {_WHAT_TO_DO[report.reason]}{_code_fix(record)}\n"
        + _run_intent(record)
        + fenced(_next_lines(record, t), "sh")
    )


_NONE: Mapping[str, str] = MappingProxyType({})

#: The state.yaml keys mergegate writes and reads; an extra key may not reuse one.
_STATE_KEYS = frozenset({"status", "follow_up", "reason", "source", "resolved_occurrence"})
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def check_extras(state: Mapping[str, str], sections: Mapping[str, str]) -> None:
    """Raise InvalidInput for an extra state.yaml key or requirements.md section that is not one.

    A key is lowercase letters, digits and ``_`` and is none of mergegate's own
    (``status``, ``follow_up``, ``reason``, ``source``, ``resolved_occurrence``);
    a value and a section title are one line; a section's text is any text.
    """
    for name, value in state.items():
        if not name or set(name) - _KEY_CHARS or name[0].isdigit():
            raise InvalidInput("state.yaml key", name, "use lowercase letters, digits and _")
        if name in _STATE_KEYS:
            raise InvalidInput("state.yaml key", name, "it is one of mergegate's own keys")
        if not isinstance(value, str) or value.splitlines() not in ([value], []):
            raise InvalidInput(f"state.yaml value of {name}", value, "give one line of text")
    for title, text in sections.items():
        if not isinstance(title, str) or not title.strip() or title.splitlines() != [title]:
            raise InvalidInput("requirements.md section title", title, "give one line")
        if not isinstance(text, str):
            raise InvalidInput(f"requirements.md section {title}", text, "give text")


def _sections(sections: Mapping[str, str]) -> str:
    # Sorted by title: the same mapping in any order renders the same bytes.
    return "".join(f"\n## {title}\n\n{text.rstrip()}\n" for title, text in sorted(sections.items()))


def _requirements(
    record: BlockedRecord, report: BlockedReport, sections: Mapping[str, str] = _NONE
) -> str:
    key = record.key
    settled = (
        "- [ ] R3: An operator's approval of this exact sha is logged (`mergegate approve`).\n"
        if _approval(report.reason)
        else "- [ ] R3: The follow-up is marked done (`mergegate followups done`).\n"
    )
    return (
        f"# Requirements: {record.follow_up_slug}\n\n"
        f"Unblock the integration of {code_span(key.slug)} (branch {code_span(key.branch)} "
        f"at {code_span(key.sha[:7])}), blocked by {code_span(report.reason.value)}.\n\n"
        "- [ ] R1: The cause recorded in `input.md` is resolved.\n"
        "- [ ] R2: The candidate's checks pass on the branch merged with the current `main`.\n"
        + settled
        + _sections(sections)
    )


def _step(action: Action) -> str:
    """What the implementation plan calls the step ``action`` takes."""
    if isinstance(action, Remediate):
        return "Start the remediation"
    if isinstance(action, MarkDone):
        return "Mark the follow-up done"
    if isinstance(action, Approve):
        return "An operator approves this exact sha, with their reason in place of the `...`"
    if isinstance(action, Resume):
        return "Resume at the branch's tip"
    return "Retry"


def _plan(record: BlockedRecord, report: BlockedReport, t: GuidanceTemplates) -> str:
    steps = [f"# Implementation plan: {record.follow_up_slug}\n\n"]
    work: tuple[str, ...] = (
        "- [ ] Read the evidence in `input.md`.\n",
        f"- [ ] {_WHAT_TO_DO[report.reason]}\n",
    )
    for action in unblock_actions(record):
        if not isinstance(action, Remediate) and work:
            # The work comes after the remediation starts, before the first step that ends it.
            steps.extend(work)
            work = ()
        steps.append(f"- [ ] {_step(action)}: {code_span(_command(action, record, t))}\n")
    return "".join(steps)


def _checklist(record: BlockedRecord) -> str:
    if _approval(record.reason):
        return (
            f"# Quality checklist: {record.follow_up_slug}\n\n"
            "- [ ] The configuration diff in `input.md` is read in full.\n"
            "- [ ] Every change it makes to the checks and the commands is intended.\n"
            "- [ ] No unrelated change rides along with it.\n"
            "- [ ] The approval is of the sha that was read, and says why in its own words.\n"
        )
    return (
        f"# Quality checklist: {record.follow_up_slug}\n\n"
        "- [ ] The fix addresses the recorded cause, not only its symptom.\n"
        "- [ ] The checks pass against the current `main`.\n"
        "- [ ] No unrelated change rides along with the fix.\n"
        "- [ ] The follow-up is marked done only after the above.\n"
    )


def _demo(record: BlockedRecord, t: GuidanceTemplates) -> str:
    key, fu = record.key, record.follow_up_slug
    show = t.command("show", key, fu)
    if _approval(record.reason):
        first = (
            f"The branch {code_span(key.branch)} needs no change. Once an operator has read "
            "the configuration diff in `input.md`, run, in order, the commands the guidance "
            "prints, with the operator's own reason in place of the `...`"
        )
    else:
        first = (
            f"Commit the fix on the branch {code_span(key.branch)}, then run, in order, the "
            "commands the guidance prints"
        )
    return f"# Demo: {fu}\n\n{first}; the last one shows the candidate `integrated`.\n\n" + fenced(
        f"{_next_lines(record, t)}\n{show}", "sh"
    )


def _state_yaml(
    record: BlockedRecord, report: BlockedReport, extra: Mapping[str, str] = _NONE
) -> str:
    key = record.key
    extras = "".join(f"{name}: {yaml_quoted(extra[name])}\n" for name in sorted(extra))

    if _approval(report.reason):
        head = (
            "# The follow-up's state. An operator's approval of this sha (`mergegate approve`)\n"
            "# settles this block, not this file: resume refuses to retry the candidate\n"
            "# before the approval is logged.\n"
        )
    else:
        head = (
            f"# The follow-up's state. `mergegate followups done {record.follow_up_slug}` sets\n"
            "# status to done for the latest block once the remediation is finished: resume\n"
            "# refuses to retry the candidate before that (unless it is forced).\n"
        )
    return (
        head + f"status: {STATE_OPEN}\n"
        f"follow_up: {yaml_quoted(record.follow_up_slug)}\n"
        f"reason: {yaml_quoted(report.reason.value)}\n"
        "source:\n"
        f"  slug: {yaml_quoted(key.slug)}\n"
        f"  branch: {yaml_quoted(key.branch)}\n"
        f"  sha: {yaml_quoted(key.sha)}\n" + extras
    )


def render_todo(
    record: BlockedRecord,
    report: BlockedReport,
    templates: GuidanceTemplates | None = None,
    *,
    state_keys: Mapping[str, str] = _NONE,
    sections: Mapping[str, str] = _NONE,
) -> dict[str, str]:
    """The six files of ``record``'s todo folder, name to text, in :data:`TODO_FILES` order.

    ``report`` supplies the evidence (the latest occurrence, normally).
    ``state_keys`` adds top-level keys to ``state.yaml`` and ``sections`` adds
    ``## title`` sections to ``requirements.md`` (both in sorted order; see
    :func:`check_extras`). The result depends on its arguments only.
    """
    check_extras(state_keys, sections)
    t = templates or GuidanceTemplates()
    files = {
        "requirements.md": _requirements(record, report, sections),
        "implementation-plan.md": _plan(record, report, t),
        "quality-checklist.md": _checklist(record),
        "input.md": _input_md(record, report, t),
        "demo.md": _demo(record, t),
        "state.yaml": _state_yaml(record, report, state_keys),
    }
    return {name: files[name] for name in TODO_FILES}
