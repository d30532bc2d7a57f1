"""A scenario: an ordered stream of tasks, the model that learns it and how each task is scored.

Vision and control build these, so the consolidation benchmark runs any method on any of them with the
same code; language streams go through ``retain.train.runner`` instead (``retain.domains.language``).
``R[i][j]`` of ``retain.evaluate.metrics`` is ``tasks[j].score`` after training on ``tasks[:i]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from retain.methods.base import Adapter
from retain.train.loop import TrainConfig


@dataclass
class Task:
    """One skill of the stream: what to train on and a score in [0, 1] of the current model."""

    name: str
    train: list[Any]
    score: Callable[[Adapter], float]


@dataclass
class Scenario:
    """An ordered stream of tasks; ``make_adapter(seed)`` builds a fresh model for one run."""

    domain: str
    name: str
    kind: str
    tasks: list[Task]
    make_adapter: Callable[[int], Adapter]
    train: TrainConfig
