"""Experience replay from a bounded reservoir of earlier tasks' examples.

The buffer is a uniform sample of every example seen so far, kept by Vitter's Algorithm R (Vitter, "Random
sampling with a reservoir", ACM TOMS 1985); replaying stored examples alongside new ones is the rehearsal
baseline of Rolnick et al., "Experience Replay for Continual Learning" (NeurIPS 2019) and Chaudhry et al.,
"On Tiny Episodic Memories in Continual Learning" (2019). The buffer is filled after each task, so a task
never replays itself, and every new batch gets ``ratio`` stored examples per new one.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from retain.methods.base import Consolidation
from retain.methods.example_codec import decode, encode_examples
from retain.models.adapter import Adapter


def example_bytes(example: Any) -> int:
    """Bytes an example holds: tensor and array payloads, text, and 8 per scalar."""
    if isinstance(example, torch.Tensor):
        return example.numel() * example.element_size()
    if isinstance(example, np.ndarray):
        return int(example.nbytes)
    if isinstance(example, str):
        return len(example.encode())
    if isinstance(example, (bytes, bytearray)):
        return len(example)
    if isinstance(example, dict):
        return sum(example_bytes(v) for v in example.values())
    if isinstance(example, (list, tuple)):
        return sum(example_bytes(v) for v in example)
    if hasattr(example, "__dataclass_fields__"):
        return sum(example_bytes(getattr(example, f)) for f in example.__dataclass_fields__)
    if isinstance(example, (int, float, bool)) or example is None:
        return 8
    return sys.getsizeof(example)


class Reservoir:
    """At most ``size`` items, at every moment a uniform sample of everything offered (Algorithm R)."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.items: list[Any] = []
        self.offered = 0
        self.rng = random.Random(seed)

    def add(self, item: Any) -> None:
        if len(self.items) < self.size:
            self.items.append(item)
        else:
            slot = self.rng.randint(0, self.offered)
            if slot < self.size:
                self.items[slot] = item
        self.offered += 1


class Replay(Consolidation):
    """Mix a uniform sample of earlier tasks' examples into every batch of the new task."""

    name = "replay"

    @dataclass
    class Config:
        size: int = 200
        ratio: float = 1.0
        seed: int = 0

        def problems(self) -> Iterator[tuple[str, str]]:
            if self.size < 1:
                yield "size", f"must be >= 1, got {self.size}"
            if not self.ratio > 0:
                yield "ratio", f"must be > 0 (stored examples per new example), got {self.ratio}"

    def __init__(self, config: "Replay.Config | None" = None) -> None:
        super().__init__(config)
        self.buffer = Reservoir(self.config.size, self.config.seed)

    def mix(self, batch: list[Any], rng: random.Random) -> list[Any]:
        stored = self.buffer.items
        if not stored:
            return batch
        wanted = min(len(stored), max(1, round(self.config.ratio * len(batch))))
        return list(batch) + rng.sample(stored, wanted)

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        for example in examples:
            self.buffer.add(example)

    def memory_bytes(self) -> int:
        return sum(example_bytes(e) for e in self.buffer.items)

    # -- state kept between runs: the buffer, how many were offered, and the reservoir's generator ---------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return encode_examples(self.buffer.items, "item.")[0]

    def extra_state(self) -> dict[str, Any]:
        version, internal, gauss = self.buffer.rng.getstate()
        return {"items": encode_examples(self.buffer.items, "item.")[1], "offered": self.buffer.offered,
                "rng": [version, list(internal), gauss]}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        items = [decode(form, tensors) for form in extra["items"]]
        if len(items) > self.config.size:
            raise ValueError(f"{len(items)} stored examples given to a replay buffer of size {self.config.size}")
        self.buffer.items = items
        self.buffer.offered = int(extra["offered"])
        version, internal, gauss = extra["rng"]
        self.buffer.rng.setstate((version, tuple(internal), gauss))
