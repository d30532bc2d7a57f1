"""A scenario: the tasks a run learns in order, the probes it watches, and how each is scored.

Language, vision and control are three kinds of scenario of the same :func:`retain.run.run`. ``R[i][j]`` of
:mod:`retain.evaluate.metrics` is ``tasks[j].score`` after training on ``tasks[:i]``; probes are scored at
the same points but never trained on (the prior skills a model had before the stream, a home's suite).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from retain.train.loop import TrainConfig

if TYPE_CHECKING:
    from retain.recipe import Recipe


@dataclass
class Task:
    """One skill: what to train on and a score in [0, 1] of the current model (``None``: not scored)."""

    name: str
    train: list[Any]
    score: Callable[[Any], float] | None = None


@dataclass
class Scenario:
    """An ordered stream of tasks; ``make_adapter(recipe)`` builds the model a run starts from.

    ``train`` is the training budget this scenario's benchmark uses by default (recipes built for it copy it).
    ``protect`` is what the model knows before the first task (``--prior`` data, a home's suite training
    splits): every consolidation plugin protects it before training starts.
    """

    domain: str
    name: str
    kind: str
    tasks: list[Task]
    make_adapter: Callable[["Recipe"], Any]
    train: TrainConfig = field(default_factory=TrainConfig)
    probes: list[Task] = field(default_factory=list)
    protect: list[Any] = field(default_factory=list)
