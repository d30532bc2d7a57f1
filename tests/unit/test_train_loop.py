"""The training loop against hand computations: every hook in order and count, the learning-rate schedule step by
step, and the loss and parameters of several AdamW steps with gradient clipping on a tiny linear model.

The adapter and objectives here are minimal on purpose (a line fitted by squared error): the loop is under test.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from retain.methods.base import Consolidation, Objective
from retain.train.loop import TrainConfig, train_task


@dataclass(frozen=True)
class Point:
    x: tuple[float, ...]
    y: float


class LineAdapter:
    """``y = w . x + b`` in float64: the smallest model the loop can train."""

    def __init__(self, w: list[float], b: float) -> None:
        self.model = nn.Linear(len(w), 1).double()
        with torch.no_grad():
            self.model.weight.copy_(torch.tensor([w], dtype=torch.float64))
            self.model.bias.fill_(b)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return dict(self.model.named_parameters())

    def predictions(self, batch):
        raise NotImplementedError("these objectives do not ask for predictions")


class SquaredError(Objective):
    """Mean squared error of the line over the batch."""

    def loss(self, adapter, batch):
        x = torch.tensor([p.x for p in batch], dtype=torch.float64)
        y = torch.tensor([p.y for p in batch], dtype=torch.float64)
        return ((adapter.model(x).squeeze(-1) - y) ** 2).mean()


class NoGradient(Objective):
    """A loss whose gradient is exactly zero: AdamW then only decays, ``p <- p * (1 - lr * weight_decay)``."""

    def loss(self, adapter, batch):
        return sum((p * 0.0).sum() for p in adapter.model.parameters())


POINTS = [Point((1.0, 2.0), 3.0), Point((-1.0, 0.5), -2.0), Point((0.0, -1.5), 1.0), Point((2.0, 1.0), 0.5),
          Point((0.5, 0.5), 4.0)]


# -- hooks ------------------------------------------------------------------------------------------------------


class RecordingObjective(SquaredError):
    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def before_task(self, adapter):
        self.log.append(("objective", "before_task"))

    def loss(self, adapter, batch):
        self.log.append(("objective", "loss", len(batch), batch[-1]))
        return super().loss(adapter, batch)

    def after_step(self, adapter):
        self.log.append(("objective", "after_step"))

    def after_task(self, adapter):
        self.log.append(("objective", "after_task"))


class RecordingPlugin(Consolidation):
    """Records every hook; adds one example of its own to the training set and to every batch, and a penalty."""

    def __init__(self, label: str, log: list, extra: Point, penalty: float) -> None:
        super().__init__()
        self.label, self.log, self.extra, self.weight = label, log, extra, penalty

    def training_set(self, examples):
        self.log.append((self.label, "training_set", len(examples)))
        return examples + [self.extra]

    def before_task(self, adapter):
        self.log.append((self.label, "before_task"))

    def mix(self, batch, rng):
        assert isinstance(rng, random.Random)
        self.log.append((self.label, "mix", len(batch)))
        return batch + [self.extra]

    def penalty(self, adapter):
        self.log.append((self.label, "penalty"))
        return self.weight * adapter.model.bias.sum()

    def after_backward(self, adapter):
        grads = [p.grad for p in adapter.model.parameters()]
        self.log.append((self.label, "after_backward", all(g is not None for g in grads)))

    def after_step(self, adapter):
        self.log.append((self.label, "after_step"))

    def after_task(self, adapter, examples):
        self.log.append((self.label, "after_task", len(examples)))


def test_hooks_run_in_order_and_count():
    log: list = []
    a_point, b_point = Point((9.0, 9.0), 0.0), Point((-9.0, 9.0), 1.0)
    plugins = [RecordingPlugin("a", log, a_point, 0.5), RecordingPlugin("b", log, b_point, 0.25)]
    steps: list = []
    cfg = TrainConfig(epochs=2, batch_size=3, lr=0.01, seed=0)
    stats = train_task(LineAdapter([0.1, -0.2], 0.3), RecordingObjective(log), plugins, POINTS, cfg,
                       on_step=lambda step, total, loss: steps.append((step, total)))
    # 5 points + 2 added by training_set = 7 examples, batches of 3: 3 steps per epoch, 6 in all
    assert stats.steps == 6 and len(stats.losses) == 6
    assert steps == [(s, 6) for s in range(1, 7)]
    want = [("a", "training_set", 5), ("b", "training_set", 6),
            ("objective", "before_task"), ("a", "before_task"), ("b", "before_task")]
    for batch in [3, 3, 1] * 2:
        want += [("a", "mix", batch), ("b", "mix", batch + 1),
                 ("objective", "loss", batch + 2, b_point),
                 ("a", "penalty"), ("b", "penalty"),
                 ("a", "after_backward", True), ("b", "after_backward", True),
                 ("objective", "after_step"), ("a", "after_step"), ("b", "after_step")]
    want += [("objective", "after_task"), ("a", "after_task", 5), ("b", "after_task", 5)]
    assert log == want


def test_penalties_are_added_to_the_loss_the_loop_reports():
    plugins = [RecordingPlugin("a", [], POINTS[0], 0.5), RecordingPlugin("b", [], POINTS[1], 0.25)]
    # one batch: the 5 points, each plugin's point added by training_set and again by mix
    batch = POINTS + [POINTS[0], POINTS[1], POINTS[0], POINTS[1]]
    with torch.no_grad():
        mse = float(SquaredError().loss(LineAdapter([0.1, -0.2], 0.3), batch))
    cfg = TrainConfig(epochs=1, batch_size=7, lr=0.01, seed=0)
    stats = train_task(LineAdapter([0.1, -0.2], 0.3), SquaredError(), plugins, POINTS, cfg)
    assert stats.losses == [pytest.approx(mse + 0.5 * 0.3 + 0.25 * 0.3, rel=1e-12)]


# -- the learning-rate schedule -------------------------------------------------------------------------------


def want_lr(step: int, lr: float, schedule: str, warmup: int, total: int) -> float:
    """Linear warmup over the first ``warmup`` steps (step t uses (t + 1) / warmup, so no step has lr 0), then
    constant or half a cosine from lr toward 0 over the remaining steps (as Hugging Face's cosine schedule)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


@pytest.mark.parametrize("schedule,warmup", [("cosine", 0), ("cosine", 3), ("constant", 0), ("constant", 3)])
def test_learning_rate_follows_the_schedule_step_by_step(schedule, warmup):
    """With a zero gradient AdamW only decays the weights, ``p <- p * (1 - lr_t * wd)``: the learning rate of
    every step can be read off the parameters."""
    adapter = LineAdapter([1.0, -2.0], 0.5)
    lr, wd, total = 0.01, 0.5, 10
    seen: list[torch.Tensor] = [adapter.model.weight.detach().clone()]
    cfg = TrainConfig(epochs=2, batch_size=1, lr=lr, weight_decay=wd, schedule=schedule, warmup_steps=warmup)
    train_task(adapter, NoGradient(), [], POINTS, cfg,
               on_step=lambda *_: seen.append(adapter.model.weight.detach().clone()))
    assert len(seen) == total + 1
    for t in range(total):
        got = (1 - seen[t + 1] / seen[t]) / wd
        torch.testing.assert_close(got, torch.full_like(got, want_lr(t, lr, schedule, warmup, total)),
                                   rtol=1e-9, atol=1e-12)


# -- AdamW with clipping, by hand -------------------------------------------------------------------------------


def hand_training(w: list[float], b: float, cfg: TrainConfig,
                  steps: int) -> tuple[list[float], list[torch.Tensor], list[torch.Tensor]]:
    """Full-batch squared error on POINTS, the gradient written out, clipping to a global norm, AdamW
    (Loshchilov & Hutter: decoupled decay, bias-corrected moments, beta 0.9/0.999, eps 1e-8) and the schedule.
    Returns the losses, the parameters after each step and the unclipped gradients."""
    theta = torch.tensor(w + [b], dtype=torch.float64)
    x = torch.tensor([list(p.x) + [1.0] for p in POINTS], dtype=torch.float64)
    y = torch.tensor([p.y for p in POINTS], dtype=torch.float64)
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    b1, b2, eps = 0.9, 0.999, 1e-8
    losses, params, raw = [], [], []
    for t in range(steps):
        residual = x @ theta - y
        losses.append(float((residual ** 2).mean()))
        g = 2 * x.T @ residual / len(POINTS)
        raw.append(g)
        norm = float(g.norm())
        if cfg.grad_clip > 0:
            g = g * min(1.0, cfg.grad_clip / (norm + 1e-6))
        lr = want_lr(t, cfg.lr, cfg.schedule, cfg.warmup_steps, steps)
        theta = theta * (1 - lr * cfg.weight_decay)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** (t + 1)), v / (1 - b2 ** (t + 1))
        theta = theta - lr * m_hat / (v_hat.sqrt() + eps)
        params.append(theta.clone())
    return losses, params, raw


class GradientRecorder(Consolidation):
    """Keeps the gradient ``after_backward`` sees (weight then bias), as SI's path integral would read it."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def after_backward(self, adapter):
        self.seen.append(torch.cat([adapter.model.weight.grad.flatten(), adapter.model.bias.grad]).clone())


@pytest.mark.parametrize("clip", [0.0, 0.5, 1e3])
def test_adamw_steps_with_clipping_equal_the_hand_computation(clip):
    w, b = [0.3, -0.7], 0.2
    # one batch per step (the whole set), so the shuffle order cannot change the numbers
    cfg = TrainConfig(epochs=4, batch_size=len(POINTS), lr=0.05, weight_decay=0.1, grad_clip=clip,
                      schedule="cosine", warmup_steps=1)
    adapter = LineAdapter(w, b)
    params: list[torch.Tensor] = []
    recorder = GradientRecorder()
    stats = train_task(adapter, SquaredError(), [recorder], POINTS, cfg, on_step=lambda *_: params.append(
        torch.cat([adapter.model.weight.detach().flatten(), adapter.model.bias.detach()])))
    want_losses, want_params, want_grads = hand_training(w, b, cfg, steps=4)
    assert stats.losses == pytest.approx(want_losses, rel=1e-10)
    assert len(params) == len(recorder.seen) == 4
    for got, want in zip(params, want_params):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    # plugins see the loss's own gradient, before clipping
    for got, want in zip(recorder.seen, want_grads):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    if clip == 0.5:
        # clipping was active and it changed the result: the unclipped run differs
        assert max(float(g.norm()) for g in want_grads) > 2 * clip
        _, unclipped, _ = hand_training(w, b, TrainConfig(**{**cfg.__dict__, "grad_clip": 0.0}), steps=4)
        assert (unclipped[-1] - want_params[-1]).abs().max() > 1e-4
