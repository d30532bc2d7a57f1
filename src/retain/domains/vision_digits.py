"""Vision streams on scikit-learn's bundled 8x8 digits (offline, 1,797 images, 10 classes).

- Split-Digits: five tasks of two classes each ({0,1}, {2,3}, ...), the digits analogue of Split MNIST
  (Zenke et al. 2017). Scored task-incrementally (the task's two outputs only) and class-incrementally
  (all ten outputs), the scenarios of van de Ven & Tolias, "Three scenarios for continual learning" (2019).
- Permuted-Digits: five tasks (or ``tasks``), each a fixed pixel permutation of all ten classes (the first the
  identity), the digits analogue of Permuted MNIST (Goodfellow et al. 2013); domain-incremental. The
  permutations come from one seeded generator in order, so a longer stream starts with the shorter one's tasks.

The classifier is an MLP 64 -> width -> width -> 10 (``HIDDEN`` by default; ``width`` sets both layers).

The data split is fixed (60% train, 20% validation, 20% test, stratified); a run's seed changes the model's
initialisation and batch order only. Tune on ``split="val"``, report on ``split="test"``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from retain.recipe import Recipe
from retain.scenario import Scenario, Task
from retain.errors import check
from retain.models.classifier import ClassifierAdapter, Labeled, mlp
from retain.train.loop import TrainConfig

SPLIT_SEED = 0
PERMUTATION_SEED = 1234
PAIRS = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
PERMUTED_TASKS = 5
HIDDEN = (128, 128)


def load(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train inputs and labels, then the ``split`` ("val" or "test") inputs and labels; pixels in [0, 1]."""
    check(split in ("val", "test"), f"must be val or test, got {split!r}", field="split")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=SPLIT_SEED)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest,
                                                    random_state=SPLIT_SEED)
    if split == "val":
        return x_train, y_train, x_val, y_val
    return x_train, y_train, x_test, y_test


def _examples(x: np.ndarray, y: np.ndarray, classes: tuple[int, ...] | None) -> list[Labeled]:
    tensors = torch.from_numpy(x)
    return [Labeled(tensors[i], int(y[i]), classes) for i in range(len(y))]


def _task(name: str, train: list[Labeled], held_out: list[Labeled]) -> Task:
    return Task(name=name, train=train, score=lambda adapter: adapter.accuracy(held_out))


def hidden(width: int | None) -> tuple[int, int]:
    """The hidden layers' sizes: ``HIDDEN``, or ``width`` for both."""
    if width is None:
        return HIDDEN
    check(width >= 1, f"must be >= 1, got {width}", field="width")
    return (width, width)


def _adapter_maker(layers: tuple[int, ...]) -> Callable[[Recipe], ClassifierAdapter]:
    return lambda recipe: ClassifierAdapter(mlp(64, layers, 10, recipe.seed))


def split_digits(split: str, train: TrainConfig, *, task_incremental: bool,
                 layers: tuple[int, ...] = HIDDEN) -> Scenario:
    """Split-Digits, task-incremental (outputs masked to the task's pair) or class-incremental (all ten)."""
    x_train, y_train, x_eval, y_eval = load(split)
    tasks = []
    for pair in PAIRS:
        classes = pair if task_incremental else None
        pick_train, pick_eval = np.isin(y_train, pair), np.isin(y_eval, pair)
        tasks.append(_task(f"digits {pair[0]}/{pair[1]}",
                           _examples(x_train[pick_train], y_train[pick_train], classes),
                           _examples(x_eval[pick_eval], y_eval[pick_eval], classes)))
    name, kind = ("split-task", "task-incremental") if task_incremental else ("split-class", "class-incremental")
    return Scenario("vision", name, kind, tasks, _adapter_maker(layers), train)


def permuted_digits(split: str, train: TrainConfig, *, tasks: int = PERMUTED_TASKS,
                    layers: tuple[int, ...] = HIDDEN) -> Scenario:
    """Permuted-Digits: task k sees every image with its own fixed pixel permutation (task 1: none)."""
    check(tasks >= 2, f"must be >= 2, got {tasks}", field="tasks")
    x_train, y_train, x_eval, y_eval = load(split)
    rng = np.random.default_rng(PERMUTATION_SEED)
    stream = []
    for k in range(tasks):
        perm = np.arange(64) if k == 0 else rng.permutation(64)
        stream.append(_task(f"permutation {k + 1}", _examples(x_train[:, perm], y_train, None),
                            _examples(x_eval[:, perm], y_eval, None)))
    return Scenario("vision", "permuted", "domain-incremental", stream, _adapter_maker(layers), train)


def train_configs(quick: bool = False) -> tuple[TrainConfig, TrainConfig]:
    """The benchmark's budgets: Split-Digits', then Permuted-Digits' (``quick``: a smoke test)."""
    split_cfg = TrainConfig(epochs=2 if quick else 10, batch_size=32, lr=1e-3, grad_clip=0.0, schedule="constant")
    return split_cfg, replace(split_cfg, epochs=1 if quick else 5)


def scenarios(split: str = "test", *, quick: bool = False, width: int | None = None,
              tasks: int = PERMUTED_TASKS) -> list[Scenario]:
    """The three vision scenarios with the training budget the benchmark uses (``quick``: a smoke test);
    ``width``: both hidden layers' size (default ``HIDDEN``), ``tasks``: Permuted-Digits' length."""
    layers = hidden(width)
    split_cfg, permuted_cfg = train_configs(quick)
    return [split_digits(split, split_cfg, task_incremental=True, layers=layers),
            split_digits(split, split_cfg, task_incremental=False, layers=layers),
            permuted_digits(split, permuted_cfg, tasks=tasks, layers=layers)]
