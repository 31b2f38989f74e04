"""Timing helpers and the row every figure reports.

These machines are noisy (a shared VM disk, two cores), so a figure is never a
single timing: each side runs once as a warm-up, then both sides run
alternately, several times, and the figure is the median. The ratio is the
median of the per-run ratios, so a slow patch of the disk that hits one run
hits both of its sides and cancels out.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Row", "paired", "row", "timed"]

Row = dict[str, Any]


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` took, with the garbage collector held off as ``timeit`` does."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def paired(
    ours: Callable[[], float],
    base: Callable[[], float],
    *,
    runs: int,
) -> tuple[float, float, float]:
    """Median cost of ``ours``, of ``base``, and the median of their per-run ratios.

    Each callable returns the cost of one run (seconds per operation, or bytes);
    it is called once as a warm-up, then ``runs`` times, alternating which side
    goes first so neither always gets the warmer cache.
    """
    ours()
    base()
    mine: list[float] = []
    theirs: list[float] = []
    for i in range(runs):
        if i % 2:
            b = base()
            m = ours()
        else:
            m = ours()
            b = base()
        mine.append(m)
        theirs.append(b)
    ratios = [m / b for m, b in zip(mine, theirs, strict=True) if b > 0]
    return statistics.median(mine), statistics.median(theirs), statistics.median(ratios)


def row(
    figure: str,
    name: str,
    *,
    value: float | None,
    unit: str,
    baseline_name: str,
    baseline: float | None,
    ratio: float | None,
    target: str,
    met: bool | None,
    note: str = "",
) -> Row:
    """One line of the table: a figure, its baseline, the ratio and whether the target is met."""
    return {
        "figure": figure,
        "name": name,
        "value": value,
        "unit": unit,
        "baseline_name": baseline_name,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
        "note": note,
    }
