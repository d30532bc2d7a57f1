"""Memory Aware Synapses: importance from how sensitive the output is to each parameter; needs no labels.

Aljundi et al., "Memory Aware Synapses: Learning what (not) to forget", ECCV 2018.
Omega_k = (1/N) sum_x |d ||f(x; theta)||_2^2 / d theta_k| with f the logits of every prediction
(``adapter.predictions``), summed over tasks; penalty lambda * sum_k Omega_k (theta_k - theta*_k)^2 (the
paper's form, no 1/2), theta* the latest parameters. The absolute value is taken per prediction, so the
gradients are per-prediction (a batch gradient would let opposite signs cancel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch

from retain.methods.ewc import chunks, examples_per_chunk, per_prediction_grads
from retain.methods.importance import ImportanceConsolidation
from retain.models.adapter import Adapter


def output_sensitivity(adapter: Adapter, examples: list[Any], *, limit: int, chunk: int,
                       seed: int) -> dict[str, torch.Tensor]:
    """Mean over predictions of |d ||logits||^2 / d theta|; ``chunk`` bounds the gradient rows of one batched
    call (:func:`retain.methods.ewc.examples_per_chunk`)."""
    params = adapter.trainable_parameters()
    total = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    if not examples:
        return total
    chunk = examples_per_chunk(adapter, examples, chunk)
    count = 0
    with torch.enable_grad():
        for batch in chunks(list(examples), limit, chunk, seed):
            logits, _ = adapter.predictions(batch)
            squared_norms = (logits.float() ** 2).sum(dim=-1)
            count += squared_norms.shape[0]
            for _, grads in per_prediction_grads(adapter, squared_norms):
                for name, g in grads.items():
                    total[name] += g.float().abs().sum(0)
    return {name: t / max(count, 1) for name, t in total.items()}


class MAS(ImportanceConsolidation):
    """Label-free output-sensitivity importance, accumulated over tasks, with the quadratic anchor penalty."""

    name = "mas"
    per_prediction_gradients = True

    @dataclass
    class Config:
        lam: float = 1.0
        samples: int = 500
        batch_size: int = 64
        seed: int = 0

        def problems(self) -> Iterator[tuple[str, str]]:
            if not self.lam >= 0:
                yield "lam", f"must be >= 0, got {self.lam}"
            if self.samples < 1:
                yield "samples", f"must be >= 1, got {self.samples}"
            if self.batch_size < 1:
                yield "batch_size", f"must be >= 1, got {self.batch_size}"

    @property
    def scale(self) -> float:
        return self.config.lam

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        cfg = self.config
        self.consolidate(adapter, output_sensitivity(adapter, examples, limit=cfg.samples, chunk=cfg.batch_size,
                                                     seed=cfg.seed + self.learned))
