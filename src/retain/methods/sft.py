"""Supervised fine-tuning: cross-entropy on the expert's targets (for a causal LM, the demonstration tokens).

This is the naive fine-tuning baseline of every table (as in Shenfeld et al., "Self-Distillation Enables
Continual Learning", 2026: off-policy, trains on the demonstration's tokens; docs/references.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from retain.methods.base import Objective
from retain.models.adapter import Adapter


class SFT(Objective):
    name = "sft"

    @dataclass
    class Config:
        label_smoothing: float = 0.0

        def problems(self) -> Iterator[tuple[str, str]]:
            if not 0.0 <= self.label_smoothing < 1.0:
                yield "label_smoothing", f"must be in [0, 1), got {self.label_smoothing}"

    def loss(self, adapter: Adapter, batch: list[Any]) -> torch.Tensor:
        logits, targets = adapter.predictions(batch)
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.config.label_smoothing)
