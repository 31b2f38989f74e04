"""The tests' live-output reader: no line lost to a chunk, every failed wait says what it saw."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .procio import LiveOutput, wait_until

# Two lines in one write, then a stall: the chunking that lost "integrated" to
# select() + readline() in the old read_until (issue 20).
ONE_CHUNK = (
    "import os, sys, time\n"
    "os.write(1, b'other: applying\\nother: integrated\\n')\n"
    "os.write(2, b'progress on stderr\\n')\n"
    "time.sleep(60)\n"
)


def _spawn(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_lines_in_one_chunk_are_both_seen() -> None:
    """Both lines of one write are found, in order, by successive waits."""
    with LiveOutput(_spawn(ONE_CHUNK)) as live:
        assert live.wait_for("applying", timeout=30) == ["other: applying"]
        assert live.wait_for("integrated", timeout=30) == ["other: integrated"]
        assert live.wait_for("progress", stream="stderr", timeout=30) == ["progress on stderr"]


def test_a_failed_wait_names_what_it_waited_for_and_every_line() -> None:
    """A timed-out wait fails with its needle, both streams' lines and the process state."""
    with LiveOutput(_spawn(ONE_CHUNK)) as live:
        live.wait_for("integrated", timeout=30)
        with pytest.raises(AssertionError) as failed:
            live.wait_for("never printed", timeout=0.2)
    said = str(failed.value)
    assert "'never printed' on stdout" in said
    assert "0.2 s passed" in said
    assert "| other: applying\n| other: integrated" in said
    assert "| progress on stderr" in said
    assert "still running" in said


def test_a_wait_fails_at_once_when_the_stream_ends() -> None:
    """A process that exits without the line: the wait fails on the end, not after its timeout."""
    with LiveOutput(_spawn("print('only this')")) as live:
        with pytest.raises(AssertionError, match="stdout ended"):
            live.wait_for("never printed", timeout=60)
        assert live.finish(timeout=30) == (0, "only this\n", "")


def test_wait_until_reports_the_state_read_at_the_timeout() -> None:
    """wait_until's message is read when it fails, so it shows the last state seen."""
    reads = iter(range(1000))
    with pytest.raises(AssertionError, match=r"waited 0.1 s for state 1 or more, read \d+"):
        wait_until(lambda: False, lambda: f"state 1 or more, read {next(reads) + 2}", 0.1)
