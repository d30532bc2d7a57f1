"""Joint training: every task trains on all examples seen so far, the upper bound no stream method beats.

This is the "offline"/multi-task reference of the continual-learning literature (e.g. van de Ven & Tolias,
"Three scenarios for continual learning", 2019): it pays for remembering with storing and re-training on
everything, which is why its memory and time columns matter as much as its accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retain.methods.base import Consolidation
from retain.methods.replay import example_bytes


class Joint(Consolidation):
    """Accumulate every task's examples and train on the union."""

    name = "joint"

    @dataclass
    class Config:
        def validate(self) -> None:
            """No options: joint training has nothing to tune."""

    def __init__(self, config: "Joint.Config | None" = None) -> None:
        self.config = config or Joint.Config()
        self.seen: list[Any] = []

    def training_set(self, examples: list[Any]) -> list[Any]:
        self.seen.extend(examples)
        return list(self.seen)

    def memory_bytes(self) -> int:
        return sum(example_bytes(e) for e in self.seen)
