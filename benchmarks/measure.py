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

__all__ = ["Row", "interleaved", "medians", "paired", "rotated", "row", "timed"]

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

    def one_run(i: int) -> tuple[float, float]:
        if i % 2:
            b = base()
            return ours(), b
        m = ours()
        return m, base()

    return medians([one_run(i) for i in range(runs)])


def interleaved(
    ours: Callable[[], float], base: Callable[[], float], *, chunks: int
) -> tuple[float, float]:
    """One run made of ``chunks`` small alternating pieces of each side; mean cost of each.

    For disk-bound figures: fsync latency on a shared VM drifts within seconds,
    so each side gets a share of every stretch of it rather than a stretch of its own.
    """
    mine = theirs = 0.0
    for i in range(chunks):
        if i % 2:
            theirs += base()
            mine += ours()
        else:
            mine += ours()
            theirs += base()
    return mine / chunks, theirs / chunks


def rotated(sides: dict[str, Callable[[], float]], *, chunks: int) -> dict[str, float]:
    """:func:`interleaved` for many sides: each chunk runs every side once, in a rotated order.

    So each side shares every stretch of the disk's drift with all the others,
    and none always runs first (or right after the same neighbour).
    """
    names = list(sides)
    total = dict.fromkeys(names, 0.0)
    for i in range(chunks):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            total[name] += sides[name]()
    return {name: t / chunks for name, t in total.items()}


def medians(results: list[tuple[float, float]]) -> tuple[float, float, float]:
    """``(ours, base)`` per run → median of each, and the median per-run ratio."""
    ratios = [m / b for m, b in results if b > 0]
    return (
        statistics.median(m for m, _ in results),
        statistics.median(b for _, b in results),
        statistics.median(ratios),
    )


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
    key: str = "",
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
        # A stable name for results.json's "ratios" (figure ids may be renumbered).
        "key": key,
    }
