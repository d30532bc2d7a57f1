"""The adapter for a torch classifier: examples are labelled tensors, one prediction per example.

A ``Labeled`` example may name the classes it chooses among (``classes``): that is how task-incremental
learning is scored and trained with one shared output layer, the "multi-headed" setting of van de Ven &
Tolias, "Three scenarios for continual learning" (2019), without the adapter knowing about tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Large enough that softmax gives an excluded class exactly zero probability in float32, small enough that
# log-softmax stays finite (a -inf logit would turn 0 * gradient into nan in the exact Fisher).
EXCLUDED_LOGIT = -1e4


@dataclass(frozen=True, eq=False)
class Labeled:
    """One example: input ``x``, integer label ``y``, and optionally the classes it may be assigned to."""

    x: torch.Tensor
    y: int
    classes: tuple[int, ...] | None = None


def mlp(inputs: int, hidden: tuple[int, ...], outputs: int, seed: int) -> nn.Sequential:
    """A ReLU multilayer perceptron whose initial weights depend only on ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, outputs))
        return nn.Sequential(*layers)


class ClassifierAdapter:
    """Wraps any module mapping inputs ``[N, ...]`` to logits ``[N, C]`` (see ``retain.models.adapter.Adapter``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.model.named_parameters() if p.requires_grad}

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def predictions(self, batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        device = self._device()
        x = torch.stack([e.x for e in batch]).to(device)
        targets = torch.tensor([e.y for e in batch], dtype=torch.long, device=device)
        logits = self.model(x)
        if any(e.classes is not None for e in batch):
            allowed = torch.ones_like(logits, dtype=torch.bool)
            for row, e in enumerate(batch):
                if e.classes is not None:
                    allowed[row] = False
                    allowed[row, list(e.classes)] = True
            logits = logits.masked_fill(~allowed, EXCLUDED_LOGIT)
        return logits, targets

    @torch.no_grad()
    def accuracy(self, examples: list[Labeled], batch_size: int = 512) -> float:
        """Fraction of ``examples`` whose arg-max class (among their allowed classes) is the label."""
        was_training = self.model.training
        self.model.eval()
        correct = 0
        for i in range(0, len(examples), batch_size):
            logits, targets = self.predictions(examples[i:i + batch_size])
            correct += int((logits.argmax(dim=-1) == targets).sum())
        self.model.train(was_training)
        return correct / len(examples)
