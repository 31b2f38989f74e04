"""What one apply must have done: ``main``, the applier's result and the Engine's outcome agree.

An integration moves ``main`` from the ``main`` it tested to the sha it
reports and leaves the candidate ``integrated``; an already-integrated
candidate and a blocked apply leave ``main`` where it was, and a block carries
the reported reason and names the ``main`` it was tested against.
"""

from __future__ import annotations

from collections.abc import Callable

from ..applier import AlreadyIntegrated, ApplyResult, Blocked, Integrated
from ..records import CandidateKey, Outcome, Reason
from ..states import Event, State
from ._failure import HarnessFailure, expect

__all__ = ["check_apply"]


def check_apply(
    outcome: Outcome,
    result: ApplyResult | None,
    before: str,
    after: str,
    check_integrated: Callable[[CandidateKey, Integrated], None],
) -> None:
    """Raise :class:`HarnessFailure` unless the apply that returned ``outcome`` and
    ``result`` moved ``main`` from ``before`` to ``after`` as its result says;
    ``check_integrated`` runs last on an integration (the subclass's own checks)."""
    key = outcome.candidate.key
    event = None if outcome.transition is None else outcome.transition.event
    facts: dict[str, object] = {
        "candidate": key,
        "result": result,
        "main_before": before,
        "main_after": after,
        "state": outcome.state,
    }
    match result:
        case Integrated():
            expect(
                after == result.main_sha != before and result.previous_main == before,
                "apply_next",
                "an integration must move main from the main it tested to the sha reported",
                **facts,
            )
            expect(
                outcome.state is State.INTEGRATED and event is Event.INTEGRATE,
                "apply_next",
                "an integrated candidate must be 'integrated' by an 'integrate' event",
                expected=State.INTEGRATED,
                actual=outcome.state,
                event=event,
                **facts,
            )
            check_integrated(key, result)
        case AlreadyIntegrated():
            expect(
                after == before == result.main_sha,
                "apply_next",
                "an already-integrated candidate must leave main where it was",
                **facts,
            )
            expect(
                outcome.state is State.INTEGRATED,
                "apply_next",
                "an already-integrated candidate must be 'integrated'",
                expected=State.INTEGRATED,
                actual=outcome.state,
                **facts,
            )
        case Blocked(report):
            expect(after == before, "apply_next", "main moved on a blocked apply", **facts)
            expect(
                outcome.state is State.BLOCKED
                and outcome.blocked is not None
                and outcome.blocked.reason is report.reason,
                "apply_next",
                "a blocked apply must leave the candidate 'blocked' with the reported reason",
                expected=(State.BLOCKED, report.reason),
                actual=(outcome.state, outcome.blocked and outcome.blocked.reason),
                **facts,
            )
            expect(
                report.reason is Reason.PRECONDITION_FAILED or report.main_sha == before,
                "apply_next",
                "a blocked report must name the main it was tested against",
                expected=before,
                actual=report.main_sha,
                **facts,
            )
        case _:
            raise HarnessFailure("apply_next", "the applier returned no ApplyResult", **facts)
