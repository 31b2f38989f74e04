"""An applier wrapper that remembers its last result and can pause the mover at a heartbeat.

The harness reads the raw :class:`~..applier.ApplyResult` the wrapped applier
returned, which the Engine's outcome does not carry, and stalls the mover there
to let another Engine recover meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import attrs

from ..applier import Applier, ApplyResult, HeldMain
from ..records import CandidateKey

__all__ = ["RecordingApplier"]


@attrs.define
class RecordingApplier:
    """Wraps an applier and keeps the result of its last ``apply``."""

    inner: Applier
    last: ApplyResult | None = None
    calls: int = 0
    stall_at: int | None = None
    stall: Callable[[], None] | None = None

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        """Delegate to the wrapped applier and remember what it returned.

        With ``stall`` and ``stall_at`` set, ``stall()`` runs right before the
        ``stall_at``-th heartbeat: the mover is paused there.
        """
        self.calls += 1
        beats = 0

        def beat() -> None:
            nonlocal beats
            beats += 1
            if beats == self.stall_at and self.stall is not None:
                self.stall()
            heartbeat()

        self.last = self.inner.apply(key, beat)
        return self.last

    def hold_main(self, *, break_stale: bool = False) -> AbstractContextManager[HeldMain]:
        """Delegate to the wrapped applier."""
        return self.inner.hold_main(break_stale=break_stale)

    def main_sha(self) -> str:
        """Delegate to the wrapped applier."""
        return self.inner.main_sha()

    def take(self) -> ApplyResult | None:
        """The last result (``None`` if there was no apply since), and forget it."""
        last, self.last = self.last, None
        return last
