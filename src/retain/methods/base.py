"""The two kinds of method and the adapter they talk to.

An *objective* (``sft``, ``sdft``) makes the training loss of one batch. A *consolidation* method (``ewc``,
``si``, ``mas``, ``l2``, ``replay``, ``joint``) changes training through a few hooks, Avalanche-style
(``before_task``, a ``penalty`` term, ``after_backward``/``after_step``, ``after_task``), so that
``sdft+ewc+replay`` composes without new code. Methods never touch model internals: they go through an
:class:`Adapter`.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

import torch
from torch import nn


class Adapter(Protocol):
    """What a method may know about a model family (causal LM, classifier, policy)."""

    model: nn.Module

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters training changes (only the adapter's under LoRA), by name."""

    def predictions(self, batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[N, C]`` and integer targets ``[N]`` for every prediction the batch holds.

        A classifier makes one prediction per example; a causal LM one per target token.
        """


class Objective:
    """Makes the loss of one batch. Subclasses: ``sft`` (cross-entropy on targets), ``sdft``."""

    name = "objective"

    def before_task(self, adapter: Adapter) -> None:
        """Called once before a task's first step."""

    def loss(self, adapter: Adapter, batch: list[Any]) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, adapter: Adapter) -> None:
        """Called after every optimiser step (the EMA teacher moves here)."""

    def after_task(self, adapter: Adapter) -> None:
        """Called once after a task's last step (state held only for training is released here)."""

    def memory_bytes(self) -> int:
        return 0


class Consolidation:
    """A plugin that protects earlier tasks. Every hook is optional."""

    name = "consolidation"

    def training_set(self, examples: list[Any]) -> list[Any]:
        """The examples to train on for this task (``joint`` returns every task seen so far)."""
        return examples

    def before_task(self, adapter: Adapter) -> None:
        """Called once before a task's first step."""

    def mix(self, batch: list[Any], rng: random.Random) -> list[Any]:
        """The batch actually trained on (``replay`` adds stored examples of earlier tasks)."""
        return batch

    def penalty(self, adapter: Adapter) -> torch.Tensor | None:
        """A term added to the loss, or None."""
        return None

    def after_backward(self, adapter: Adapter) -> None:
        """Gradients are in ``.grad``, the step has not been taken."""

    def after_step(self, adapter: Adapter) -> None:
        """The optimiser step has been taken."""

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        """The task is learned: estimate importances, store anchors, fill buffers."""

    def memory_bytes(self) -> int:
        """Bytes this method holds beyond the model: importances, anchors, buffers."""
        return 0


def tensor_bytes(tensors: dict[str, torch.Tensor] | list[torch.Tensor]) -> int:
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return sum(t.numel() * t.element_size() for t in values)
