"""Figures of the consolidation benchmark: retention per method and the accuracy matrices, as PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI machines; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def retention_figure(domain: str, scenarios: dict[str, Any]) -> Figure:
    """Grouped bars: mean retention of earlier tasks for every method, one bar per scenario, std as error."""
    methods = list(next(iter(scenarios.values()))["methods"])
    width = 0.8 / len(scenarios)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(methods)), 3.8))
    for k, (name, entry) in enumerate(scenarios.items()):
        stats = [entry["methods"][m]["summary"]["retention"] for m in methods]
        means = [0.0 if math.isnan(s["mean"]) else s["mean"] for s in stats]
        ax.bar(np.arange(len(methods)) + (k - (len(scenarios) - 1) / 2) * width, means, width,
               yerr=[s["std"] if not math.isnan(s["std"]) else 0.0 for s in stats], capsize=2, label=name)
    ax.axhline(0.9, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(np.arange(len(methods)), methods, rotation=30, ha="right")
    ax.set_ylabel("retention R[T][j] / R[j][j]")
    ax.set_ylim(0, max(1.1, ax.get_ylim()[1]))
    ax.set_title(f"{domain}: retention of earlier tasks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_retention(domain: str, scenarios: dict[str, Any], path: Path) -> Path:
    """:func:`retention_figure` as a PNG."""
    return _save(retention_figure(domain, scenarios), path)


def mean_matrix(runs: list[dict[str, Any]], key: str = "R") -> np.ndarray:
    """The element-wise mean over seeds of the runs' matrices ``key`` (``R`` or ``probe_R``)."""
    return np.mean([run[key] for run in runs], axis=0)


def matrices_figure(domain: str, name: str, entry: dict[str, Any]) -> Figure:
    """One heatmap per method of the accuracy matrix R (mean over seeds); row 0 is before training."""
    methods = list(entry["methods"])
    cols = min(3, len(methods))
    rows = math.ceil(len(methods) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.flat[len(methods):]:
        ax.axis("off")
    for ax, label in zip(axes.flat, methods):
        R = mean_matrix(entry["methods"][label]["runs"])
        ax.imshow(R, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), value in np.ndenumerate(R):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if value < 0.5 else "black")
        ax.set_title(label, fontsize=9)
        ax.set_xticks(range(R.shape[1]), [str(j + 1) for j in range(R.shape[1])], fontsize=7)
        ax.set_yticks(range(R.shape[0]), [str(i) for i in range(R.shape[0])], fontsize=7)
        ax.set_xlabel("task scored", fontsize=7)
        ax.set_ylabel("after task", fontsize=7)
    fig.suptitle(f"{domain} / {name}: accuracy matrix R (mean over seeds)")
    fig.tight_layout()
    return fig


def plot_matrices(domain: str, name: str, entry: dict[str, Any], path: Path) -> Path:
    """:func:`matrices_figure` as a PNG."""
    return _save(matrices_figure(domain, name, entry), path)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_all(results: dict[str, Any], out: Path) -> list[Path]:
    """Every figure of ``results`` into ``out``: ``retention_<domain>.png``, ``matrix_<domain>_<scenario>.png``."""
    paths = []
    for domain, scenarios in results["domains"].items():
        paths.append(plot_retention(domain, scenarios, out / f"retention_{domain}.png"))
        for name, entry in scenarios.items():
            paths.append(plot_matrices(domain, name, entry, out / f"matrix_{domain}_{name}.png"))
    return paths
