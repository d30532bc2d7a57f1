"""A step that overflows the model is refused before anything is saved (one line, field lr), and an lr above 1
is bad input. The line is fitted in float32 to targets near its largest value, so the squared error is
infinite and the weights become NaN after the first step: a real overflow, not an injected one."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from retain.errors import RetainError
from retain.methods.base import Objective
from retain.train.loop import TrainConfig, train_task


@dataclass(frozen=True)
class Point:
    x: tuple[float, ...]
    y: float


class LineAdapter:
    def __init__(self) -> None:
        self.model = nn.Linear(2, 1)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return dict(self.model.named_parameters())

    def predictions(self, batch):
        x = torch.tensor([p.x for p in batch])
        return self.model(x), torch.zeros(len(batch), dtype=torch.long)


class SquaredError(Objective):
    def loss(self, adapter, batch):
        x = torch.tensor([p.x for p in batch])
        y = torch.tensor([p.y for p in batch])
        return ((adapter.model(x).squeeze(-1) - y) ** 2).mean()


def test_weights_that_overflow_are_refused_in_one_line():
    adapter = LineAdapter()
    points = [Point((1.0, 2.0), 3e38), Point((-1.0, 0.5), -3e38)]
    with pytest.raises(RetainError, match=r"^lr: training left 2 weight tensors \(e.g. weight\) not finite after 1 "
                                          r"steps .* nothing was saved$"):
        train_task(adapter, SquaredError(), [], points, TrainConfig(epochs=1, batch_size=2, lr=0.1, grad_clip=0))


def test_a_sane_step_passes_and_an_lr_above_one_is_bad_input():
    points = [Point((1.0, 2.0), 3.0), Point((-1.0, 0.5), -2.0)]
    stats = train_task(LineAdapter(), SquaredError(), [], points, TrainConfig(epochs=2, batch_size=2, lr=0.1))
    assert stats.steps == 2
    with pytest.raises(RetainError, match=r"^lr: must be at most 1 .*got 1e\+30$"):
        train_task(LineAdapter(), SquaredError(), [], points, TrainConfig(epochs=1, batch_size=2, lr=1e30))
