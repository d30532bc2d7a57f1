"""Figures of the consolidation sweeps: retention and ACC against hidden width or number of tasks, one line per
method, as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI machines; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def _stat(stat: dict[str, Any]) -> tuple[float, float]:
    mean, std = stat.get("mean"), stat.get("std")
    nan = float("nan")
    return (nan if mean is None else mean), (0.0 if std is None or std != std else std)


def sweep_figure(domain: str, entry: dict[str, Any], x: str) -> Figure:
    """Two panels, retention and ACC on the test split against ``x`` (width or tasks); mean ± std over seeds."""
    pts = entry["points"]
    xs = [p[x] for p in pts]
    labels = list(pts[0]["methods"])
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.8))
    for ax, metric, title in ((axes[0], "retention", "retention of earlier tasks"),
                              (axes[1], "acc", "ACC (mean accuracy after the last task)")):
        for label in labels:
            stats = [_stat(p["methods"][label]["summary"][metric]) for p in pts]
            ax.errorbar(xs, [s[0] for s in stats], yerr=[s[1] for s in stats], marker="o", markersize=4,
                        capsize=2, linestyle="--" if label == "replay" else "-", label=label)
        if metric == "retention":
            ax.axhline(0.9, color="grey", linestyle=":", linewidth=0.8)
        if x == "width":
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(v) for v in xs])
        ax.set_xlabel("hidden width (both layers)" if x == "width" else "tasks in the stream")
        ax.set_ylim(0, max(1.1, ax.get_ylim()[1]))
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fixed = f"{pts[0]['tasks']} tasks" if x == "width" else f"width {pts[0]['width']}"
    fig.suptitle(f"{domain} / {entry['scenario']} ({fixed}), test split, strengths chosen on validation")
    fig.tight_layout()
    return fig


def plot_sweep(results: dict[str, Any], out: Path) -> list[Path]:
    """One figure per domain: ``<sweep>_<domain>.png`` in ``out``."""
    paths = []
    for domain, entry in results["domains"].items():
        fig = sweep_figure(domain, entry, results["sweep"])
        path = out / f"{results['sweep']}_{domain}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
