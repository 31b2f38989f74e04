"""Figure 6 as a picture: the cost of each history query against the log size."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_growth"]


def plot_growth(growth: dict[str, dict[int, float]], path: Path) -> Path:
    """Draw ``{query: {log rows: seconds}}`` on log-log axes into the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the harness runs headless and in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, times in growth.items():
        sizes = sorted(times)
        style = "--" if name.startswith("(contrast)") else "-"
        ax.plot(sizes, [times[s] * 1e6 for s in sizes], style, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows in the transition log")
    ax.set_ylabel("time per query (µs, median)")
    ax.set_title("mergegate on SQLite: history queries as the transition log grows")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
