"""The demo's pictures: accuracy matrices side by side, and prior-skill accuracy over the stream.

Each is built once as a figure; the demo saves it as PNG and its HTML report inlines the same figure as SVG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def matrices_figure(matrices: dict[str, list[list[float]]], skills: list[str]) -> Figure:
    """One heatmap per method of R[i][j] (rows: before training, then after each skill)."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(4.2 * len(matrices), 3.8), squeeze=False)
    rows = ["before"] + [f"after {s}" for s in skills]
    for ax, (method, matrix) in zip(axes[0], matrices.items()):
        data = np.asarray(matrix)
        ax.imshow(data, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(skills)), skills, rotation=30, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_title(method)
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                ax.text(j, i, f"{data[i, j]:.0%}", ha="center", va="center",
                        color="black" if data[i, j] > 0.5 else "white", fontsize=9)
    fig.suptitle("Accuracy on each new skill (held-out queries, no demonstration)")
    fig.tight_layout()
    return fig


def matrices_png(path: Path, matrices: dict[str, list[list[float]]], skills: list[str]) -> None:
    """:func:`matrices_figure` as a PNG."""
    _save(matrices_figure(matrices, skills), path)


def prior_figure(curves: dict[str, list[list[float]]], skills: list[str]) -> Figure:
    """Mean prior-skill (probe) accuracy after each step of the stream, per method; thin lines per probe."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = range(len(skills) + 1)
    for k, (method, probe_matrix) in enumerate(curves.items()):
        data = np.asarray(probe_matrix)
        colour = f"C{k}"
        for j in range(data.shape[1]):
            ax.plot(x, data[:, j], color=colour, alpha=0.25, linewidth=1)
        ax.plot(x, data.mean(axis=1), color=colour, linewidth=2.5, marker="o", label=f"{method} (mean of probes)")
    ax.set_xticks(list(x), ["before"] + [f"after {s}" for s in skills], rotation=20)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("accuracy")
    ax.set_title("Prior skills (probes) while new ones are learned")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def prior_png(path: Path, curves: dict[str, list[list[float]]], skills: list[str]) -> None:
    """:func:`prior_figure` as a PNG."""
    _save(prior_figure(curves, skills), path)


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
