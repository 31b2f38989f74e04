"""The run loop says an unpause before the apply it allowed, however late the unpause landed."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import attrs

from mergegate.cli.runloop import Loop


@attrs.define
class _Lines:
    """A reporter that keeps what it was told, in order."""

    lines: list[str] = attrs.Factory(list)

    def started(self, outcome: Any) -> None:
        self.lines.append(f"{outcome.candidate.key.slug}: applying")

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_an_unpause_that_landed_after_the_controls_were_read_is_said_before_applying() -> None:
    """A pause was said; the claim then succeeded: "queue unpaused" comes before "applying"."""
    reporter = _Lines()
    loop = Loop(cast(Any, None), cast(Any, None), "owner", cast(Any, reporter))
    loop.pause.said = 7  # the run announced the pause whose control id is 7
    outcome = SimpleNamespace(candidate=SimpleNamespace(key=SimpleNamespace(slug="add-docs")))
    loop._started(cast(Any, outcome))
    assert reporter.lines == ["queue unpaused: taking the queue again", "add-docs: applying"]
    # Said once: the next step's look at the controls finds nothing more to say.
    assert loop.pause.changes(cast(Any, SimpleNamespace(paused=None, draining=None))) == []
