"""Building a blocked report from ``block``'s options and its ``--evidence-file``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from mergegate.persistence import evidence_from_json
from mergegate.statemachine import BlockedReport, Evidence, InvalidInput, Reason

__all__ = ["MAX_EVIDENCE_BYTES", "build_report", "read_evidence"]

MAX_EVIDENCE_BYTES = 1 << 20


def read_evidence(source: str) -> Evidence:
    """The evidence in file ``source`` (``-`` is stdin): the JSON object of docs/blocked-payload.md.

    Raises InvalidInput when the file cannot be read, is larger than 1 MiB, is
    not JSON, or is not the documented shape.
    """
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_EVIDENCE_BYTES + 1)
        else:
            with Path(source).open("rb") as handle:
                data = handle.read(MAX_EVIDENCE_BYTES + 1)
    except (OSError, ValueError) as err:
        why = getattr(err, "strerror", None) or str(err)
        raise InvalidInput("--evidence-file", source, f"cannot be read ({why})") from None
    if len(data) > MAX_EVIDENCE_BYTES:
        raise InvalidInput("--evidence-file", source, "is larger than 1 MiB; keep the tail only")
    return evidence_from_json(data)


def build_report(
    reason: str,
    main_sha: str,
    *,
    detail: str | None,
    conflict_files: Sequence[str],
    evidence: Evidence,
) -> BlockedReport:
    """The report ``block`` records; ``--conflict-file`` paths join the file's conflicted paths."""
    if conflict_files:
        evidence = attrs.evolve(
            evidence, conflicted_paths=(*evidence.conflicted_paths, *conflict_files)
        )
    return BlockedReport(Reason(reason), main_sha, evidence, detail=detail)
