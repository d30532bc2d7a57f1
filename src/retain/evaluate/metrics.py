"""Continual-learning metrics on an accuracy matrix, exactly as the papers below define them (the formulas:
docs/references.md, Metrics).

``R`` has ``T + 1`` rows and ``T`` columns: ``R[i][j]`` is the score on task ``j`` after training on tasks
``1..i`` and row 0 is the score before any training. Task ``j`` (1-based, as in the papers) is column
``j - 1`` and was just learned in row ``j``, so "``R[j][j]``" of the formulas is ``R[j, j - 1]`` here.

Metrics that compare a task with later ones (BWT, FWT, forgetting, retention) need ``T >= 2``; with one task
they are ``nan``, never a made-up zero.

- ACC (average accuracy after the stream) and BWT/FWT: Lopez-Paz & Ranzato, "Gradient Episodic Memory for
  Continual Learning", NeurIPS 2017.
- Forgetting: Chaudhry et al., "Riemannian Walk for Incremental Learning", ECCV 2018.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from retain.errors import RetainError

Matrix = Sequence[Sequence[float]] | np.ndarray


def as_matrix(R: Matrix) -> np.ndarray:
    """``R`` as a float array of shape ``(T + 1, T)``; any other shape or a non-finite score is an error."""
    arr = np.asarray(R, dtype=float)
    if arr.ndim != 2 or arr.shape[1] < 1 or arr.shape[0] != arr.shape[1] + 1:
        raise RetainError(f"accuracy matrix must have T + 1 rows and T >= 1 columns, got shape {arr.shape}",
                          field="R")
    if not np.all(np.isfinite(arr)):
        raise RetainError("accuracy matrix holds a non-finite score", field="R")
    return arr


def _diag(arr: np.ndarray) -> np.ndarray:
    """``R[j][j]`` for j = 1..T: each task's score right after it was learned."""
    T = arr.shape[1]
    return arr[np.arange(1, T + 1), np.arange(T)]


def acc(R: Matrix) -> float:
    """ACC = (1/T) sum_j R[T][j]: mean score over all tasks after the whole stream."""
    arr = as_matrix(R)
    return float(arr[-1].mean())


def bwt(R: Matrix) -> float:
    """BWT = 1/(T-1) sum_{j<T} (R[T][j] - R[j][j]); negative means the stream erased earlier tasks."""
    arr = as_matrix(R)
    T = arr.shape[1]
    if T < 2:
        return math.nan
    return float((arr[-1, :-1] - _diag(arr)[:-1]).mean())


def fwt(R: Matrix) -> float:
    """FWT = 1/(T-1) sum_{j>1} (R[j-1][j] - R[0][j]): how much earlier tasks help a task not yet trained."""
    arr = as_matrix(R)
    T = arr.shape[1]
    if T < 2:
        return math.nan
    before_learning = arr[np.arange(1, T), np.arange(1, T)]
    return float((before_learning - arr[0, 1:]).mean())


def forgetting_per_task(R: Matrix) -> list[float]:
    """f_j = max_{1<=l<T} R[l][j] - R[T][j] for every earlier task j < T (Chaudhry et al. 2018).

    The maximum runs over rows after training started (l >= 1), as in the paper: a high score before any
    training (row 0) is not something the stream learned and then forgot.
    """
    arr = as_matrix(R)
    T = arr.shape[1]
    if T < 2:
        return []
    best = arr[1:T, :T - 1].max(axis=0)
    return [float(x) for x in best - arr[-1, :T - 1]]


def forgetting(R: Matrix) -> float:
    """Mean of :func:`forgetting_per_task` over the earlier tasks j < T."""
    per_task = forgetting_per_task(R)
    return float(np.mean(per_task)) if per_task else math.nan


def retention_per_task(R: Matrix) -> list[float]:
    """R[T][j] / R[j][j] for every earlier task j < T; ``nan`` where the task was never learned (R[j][j] <= 0)."""
    arr = as_matrix(R)
    T = arr.shape[1]
    learned = _diag(arr)[:T - 1]
    final = arr[-1, :T - 1]
    return [float(f / d) if d > 0 else math.nan for f, d in zip(final, learned)]


def retention(R: Matrix) -> float:
    """Mean retention of the earlier tasks, skipping tasks whose retention is undefined; ``nan`` if none."""
    values = [r for r in retention_per_task(R) if not math.isnan(r)]
    return float(np.mean(values)) if values else math.nan


def prior_retention(before: Sequence[float], after: Sequence[float]) -> float:
    """Retention of prior capabilities that are not in the stream (probes): the mean of after / before over
    the capabilities the model had (before > 0); ``nan`` when it had none, never a made-up zero."""
    ratios = [a / b for b, a in zip(before, after) if b > 0]
    return float(np.mean(ratios)) if ratios else math.nan


def summarize(R: Matrix) -> dict[str, float]:
    """Every stream metric of ``R``: ``acc``, ``bwt``, ``fwt``, ``forgetting``, ``retention``."""
    return {"acc": acc(R), "bwt": bwt(R), "fwt": fwt(R), "forgetting": forgetting(R), "retention": retention(R)}


def mean_std_text(stat: dict[str, float | None], digits: int = 3) -> str:
    """``mean ± std`` of a summary cell (``{"mean", "std"}``), or ``-`` when it is undefined (nan, or null as
    JSON writes it)."""
    mean = stat["mean"]
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {stat['std']:.{digits}f}"
