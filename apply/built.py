"""What building a merge gives: a merge commit to check and move, or the Blocked report of why not.

The applier, the chain and the CLI share these results: :class:`Built` is one
link (a chain builds them on one another), :func:`checks_failed` turns the
checks' verdict on it into a block, and :data:`NULL_SHA` stands for a ``main``
that could not be read. :func:`precondition` and :func:`evidence` are how the
applier's parts write the reports they block with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from mergegate.statemachine import (
    Blocked,
    BlockedReport,
    CandidateKey,
    CheckResult,
    Evidence,
    Reason,
)

__all__ = ["NULL_SHA", "Built", "checks_failed", "evidence", "precondition"]

#: The ``main_sha`` of a blocked report when ``main`` itself could not be read.
NULL_SHA = "0" * 40


def evidence(**fields: Any) -> Evidence:
    """``Evidence(**fields)``, typed loosely on purpose (see the comment inside)."""
    # Evidence's tuple converters type as Iterable[_T_co] under mypy's attrs
    # plugin; going through **fields keeps the call checked at runtime only.
    return Evidence(**fields)


def precondition(main: str, diagnostic: str) -> Blocked:
    """A ``precondition_failed`` block against ``main``, saying ``diagnostic``."""
    return Blocked(BlockedReport(Reason.PRECONDITION_FAILED, main, Evidence(diagnostic=diagnostic)))


@attrs.frozen
class Built:
    """A merge commit made, not yet checked: ``commit`` merges ``candidate`` onto ``base``.

    ``already`` marks a candidate that ``base`` already contains: then ``commit``
    is ``base`` itself, there is nothing to check and nothing to move.
    """

    base: str
    candidate: str
    commit: str
    already: bool = False
    #: The merge changes the configuration (approved): candidates after it are to be
    #: checked by the new one, so a chain builds nothing on it (see chain.py).
    gate: bool = False


def checks_failed(
    key: CandidateKey, built: Built, results: Sequence[CheckResult]
) -> Blocked | None:
    """The Blocked result of ``results`` if one of them failed, else ``None``.

    A CI's check (one with a build URL) that never started or never finished
    before its deadline blocks as ``checks_timed_out``; a local check killed
    at its timeout stays ``checks_failed``, as it always was.
    """
    failed = [r for r in results if r.failed]
    if not failed:
        return None
    first = failed[0]
    if first.timed_out and first.url is not None:
        reason, what = Reason.CHECKS_TIMED_OUT, "timed out"
    else:
        reason, what = Reason.CHECKS_FAILED, "failed"
    return Blocked(
        BlockedReport(
            reason,
            built.base,
            evidence(checks=tuple(results)),
            detail=f"check {first.name!r} {what} on the merge of {key}",
        )
    )
