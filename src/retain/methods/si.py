"""Synaptic Intelligence: importance from each parameter's contribution to the drop in loss along the path.

Zenke, Poole & Ganguli, "Continual Learning Through Synaptic Intelligence", ICML 2017.
While a task trains, omega_k += -g_k * dtheta_k at every step (g read before the step, dtheta after it);
when it ends, Omega_k += omega_k / (Delta_k^2 + xi) with Delta_k the parameter's total change over the task.
Penalty: c * sum_k Omega_k (theta_k - theta*_k)^2 (the paper's form, no 1/2), theta* the latest parameters.
The gradient read is the one the optimiser is about to use (the total loss, penalty included, as in van de
Ven et al.'s PyTorch implementation); the step is the one actually taken, clipping and Adam included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch

from retain.errors import RetainError
from retain.methods.base import tensor_bytes
from retain.methods.importance import ImportanceConsolidation, snapshot
from retain.models.adapter import Adapter


class SI(ImportanceConsolidation):
    """Path-integral importance accumulated online, with the quadratic anchor penalty."""

    name = "si"

    @dataclass
    class Config:
        c: float = 1.0
        xi: float = 0.1

        def problems(self) -> Iterator[tuple[str, str]]:
            if not self.c >= 0:
                yield "c", f"must be >= 0, got {self.c}"
            if not self.xi > 0:
                yield "xi", f"must be > 0 (it keeps Omega finite for parameters that did not move), got {self.xi}"

    def __init__(self, config: "SI.Config | None" = None) -> None:
        super().__init__(config)
        # held only while a task trains
        self.omega: dict[str, torch.Tensor] = {}
        self.start: dict[str, torch.Tensor] = {}
        self.previous: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}

    @property
    def scale(self) -> float:
        return self.config.c

    def before_task(self, adapter: Adapter) -> None:
        self.start = snapshot(adapter)
        self.previous = snapshot(adapter)
        self.omega = {name: torch.zeros_like(p) for name, p in self.start.items()}

    def after_backward(self, adapter: Adapter) -> None:
        self.grads = {name: p.grad.detach().clone() for name, p in adapter.trainable_parameters().items()
                      if p.grad is not None}

    def after_step(self, adapter: Adapter) -> None:
        for name, p in adapter.trainable_parameters().items():
            now = p.detach()
            if name in self.grads:
                self.omega[name] -= self.grads[name] * (now - self.previous[name])
            self.previous[name] = now.clone()
        self.grads = {}

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        end = snapshot(adapter)
        self.consolidate(adapter, {name: self.omega[name] / ((end[name] - self.start[name]) ** 2 + self.config.xi)
                                   for name in end})
        self.omega, self.start, self.previous = {}, {}, {}

    def protect(self, adapter: Adapter, examples: list[Any]) -> None:
        raise RetainError("si learns importance along a training path and cannot estimate it from data "
                          "before training; protect named data with ewc, mas, l2, replay or rehearsal",
                          field="method")

    def memory_bytes(self) -> int:
        return super().memory_bytes() + sum(tensor_bytes(t) for t in (self.omega, self.start, self.previous) if t)
