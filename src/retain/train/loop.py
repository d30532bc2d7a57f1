"""The training loop for one task: plain code through Accelerate, seeded, with a progress bar.

``accelerator.prepare`` and ``accelerator.backward`` make ``accelerate launch`` (DDP, FSDP, DeepSpeed) work
without new code; each process trains on its own slice of every batch.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from accelerate import Accelerator

from retain.errors import check
from retain.methods.base import Consolidation, Objective
from retain.models.adapter import Adapter


@dataclass
class TrainConfig:
    """Optimisation knobs of one task. Defaults follow SDFT's recipe (REFERENCE section 1) at small scale."""

    epochs: int = 2
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    seed: int = 0

    def validate(self) -> None:
        check(self.epochs >= 1, f"must be >= 1, got {self.epochs}", field="epochs")
        check(self.batch_size >= 1, f"must be >= 1, got {self.batch_size}", field="batch_size")
        check(self.lr > 0 and math.isfinite(self.lr), f"must be a positive number, got {self.lr}", field="lr")
        check(self.weight_decay >= 0, f"must be >= 0, got {self.weight_decay}", field="weight_decay")
        check(self.grad_clip >= 0, f"must be >= 0, got {self.grad_clip}", field="grad_clip")
        check(self.schedule in ("cosine", "constant"), f"must be cosine or constant, got {self.schedule!r}",
              field="schedule")


@dataclass
class TaskStats:
    steps: int
    seconds: float
    losses: list[float]


def _lr_lambda(cfg: TrainConfig, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def train_task(adapter: Adapter, objective: Objective, plugins: list[Consolidation], examples: list[Any],
               cfg: TrainConfig, *, accelerator: Accelerator | None = None,
               on_step: Callable[[int, int, float], None] | None = None) -> TaskStats:
    """Train ``adapter`` on one task's ``examples`` with ``objective`` plus every plugin's hooks.

    ``on_step(step, total, loss)`` is called after each optimiser step (:func:`retain.run.run` draws progress bars with it).
    """
    cfg.validate()
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    train_set = list(examples)
    for plugin in plugins:
        train_set = plugin.training_set(train_set)
    check(len(train_set) > 0, "no training examples", field="examples")
    rng = random.Random(cfg.seed)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs

    params = list(adapter.trainable_parameters().values())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, total))
    model, optimizer = accelerator.prepare(adapter.model, optimizer)
    model.train()

    objective.before_task(adapter)
    for plugin in plugins:
        plugin.before_task(adapter)

    losses: list[float] = []
    start = time.perf_counter()
    step = 0
    for _ in range(cfg.epochs):
        order = list(range(len(train_set)))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            batch = [train_set[i] for i in order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
            for plugin in plugins:
                batch = plugin.mix(batch, rng)
            batch = batch[accelerator.process_index::accelerator.num_processes] or batch
            loss = objective.loss(adapter, batch)
            for plugin in plugins:
                term = plugin.penalty(adapter)
                if term is not None:
                    loss = loss + term
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            for plugin in plugins:
                plugin.after_backward(adapter)
            if cfg.grad_clip > 0:
                accelerator.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            objective.after_step(adapter)
            for plugin in plugins:
                plugin.after_step(adapter)
            step += 1
            losses.append(float(loss.detach()))
            if on_step is not None:
                on_step(step, total, losses[-1])
    model.eval()
    objective.after_task(adapter)
    for plugin in plugins:
        plugin.after_task(adapter, list(examples))
    return TaskStats(steps=step, seconds=time.perf_counter() - start, losses=losses)
