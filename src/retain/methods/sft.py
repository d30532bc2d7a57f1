"""Supervised fine-tuning: cross-entropy on the expert's targets (for a causal LM, the demonstration tokens).

This is the naive fine-tuning baseline of every table (REFERENCE section 1: off-policy, trains on the
demonstration's tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from retain.errors import check
from retain.methods.base import Adapter, Objective


class SFT(Objective):
    name = "sft"

    @dataclass
    class Config:
        label_smoothing: float = 0.0

        def validate(self) -> None:
            check(0.0 <= self.label_smoothing < 1.0, f"must be in [0, 1), got {self.label_smoothing}",
                  field="sft.label_smoothing")

    def __init__(self, config: "SFT.Config | None" = None) -> None:
        self.config = config or SFT.Config()

    def loss(self, adapter: Adapter, batch: list[Any]) -> torch.Tensor:
        logits, targets = adapter.predictions(batch)
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.config.label_smoothing)
