"""Joint training: every task trains on all examples seen so far, the upper bound no stream method beats.

This is the "offline"/multi-task reference of the continual-learning literature (e.g. van de Ven & Tolias,
"Three scenarios for continual learning", 2019): it pays for remembering with storing and re-training on
everything, which is why its memory and time columns matter as much as its accuracy.
"""

from __future__ import annotations

from typing import Any

import torch

from retain.methods.base import Consolidation, NoOptions
from retain.methods.example_codec import decode, encode_examples
from retain.methods.replay import example_bytes


class Joint(Consolidation):
    """Accumulate every task's examples and train on the union."""

    name = "joint"
    Config = NoOptions

    def __init__(self, config: NoOptions | None = None) -> None:
        super().__init__(config)
        self.seen: list[Any] = []

    def training_set(self, examples: list[Any]) -> list[Any]:
        self.seen.extend(examples)
        return list(self.seen)

    def memory_bytes(self) -> int:
        return sum(example_bytes(e) for e in self.seen)

    # -- state kept between runs: every example seen -------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return encode_examples(self.seen, "seen.")[0]

    def extra_state(self) -> dict[str, Any]:
        return {"seen": encode_examples(self.seen, "seen.")[1]}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        self.seen = [decode(form, tensors) for form in extra["seen"]]
