"""Weight interpolation after each task (WiSE-FT): keep part of the way back to the task-start model.

After a task is learned, theta <- theta_0 + alpha (theta - theta_0), with theta_0 the trainable parameters at
the task's start and alpha in (0, 1]: the weight-space ensemble of the model before and after fine-tuning
(Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022). Fine-tuned and pre-fine-tuning models
of one run lie in one linear basin, so the interpolation keeps much of the new skill while moving the old
competences back towards the start (Lin et al., "Mitigating the Alignment Tax of RLHF", EMNLP 2024, find such
averaging the best trade-off between new and prior abilities among the methods they compare). ``alpha = 1`` is
plain fine-tuning.

It needs no data of earlier skills (nothing to protect), and keeps no state between tasks: theta_0 is taken
afresh at each task's start. Other plugins see the merged model: the run loop calls this plugin's
``after_task`` before theirs (:attr:`first_after_task`), so an EWC anchor or a rehearsal buffer is taken at the
model that is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch

from retain.methods.base import Consolidation
from retain.methods.importance import snapshot
from retain.models.adapter import Adapter


class Merge(Consolidation):
    """theta <- lerp(theta_0, theta, alpha) at the end of every task."""

    name = "merge"
    needs_prior = False
    first_after_task = True

    @dataclass
    class Config:
        alpha: float = 0.5

        def problems(self) -> Iterator[tuple[str, str]]:
            if not 0 < self.alpha <= 1:
                yield "alpha", f"must be in (0, 1], got {self.alpha}"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.start: dict[str, torch.Tensor] | None = None

    def before_task(self, adapter: Adapter) -> None:
        self.start = snapshot(adapter)

    @torch.no_grad()
    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        if self.start is None:
            return
        for name, p in adapter.trainable_parameters().items():
            p.copy_(torch.lerp(self.start[name].to(p.device, p.dtype), p, self.config.alpha))
        self.start = None

    def protect(self, adapter: Adapter, examples: list[Any]) -> None:
        """Nothing to estimate: the task-start model is what is kept."""

    def memory_bytes(self) -> int:
        return 0 if self.start is None else sum(t.numel() * t.element_size() for t in self.start.values())
