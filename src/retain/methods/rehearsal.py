"""Self-generated rehearsal: keep prompts of what the model knew, let the model answer them itself just before
each new task, and mix those answers into the new task's batches.

Followed:

- Self-Synthesized Rehearsal (Huang et al., "Mitigating Catastrophic Forgetting in Large Language Models with
  Self-Synthesized Rehearsal", ACL 2024): rehearsal data is produced by the model itself instead of stored
  human answers, so no original answer needs to be kept.
- Learning without Forgetting (Li and Hoiem, TPAMI 2017 / ECCV 2016): the targets for old behaviour are the
  model's own outputs recorded before the new task starts, so training keeps the new model close to the
  pre-task model on old inputs.

What the buffer holds is prompts only (a uniform reservoir, Vitter's Algorithm R, of every prompt offered):
the prior-competence data a learn names (``--protect``, a home's suite training splits) and, after each
task, that task's training prompts. ``before_task`` answers every stored prompt greedily with the current
(pre-task) model; ``mix`` adds ``ratio`` of those answered examples per new example to every batch. Under SFT
they are trained on with cross-entropy; under SDFT the teacher is shown the pre-task model's own answer as the
demonstration and the student's on-policy samples are distilled toward it. A probe of demonstration use is
offered as the full text the model sees (query and demonstration, :class:`Rehearsed` with ``shown``), so that
ability is rehearsed too; SDFT's teacher then sees that text as it is (wrapping it in the teacher template a
second time gave a prompt the model never saw, whose teacher destroyed demonstration use: in-context 96% ->
0% on the demo stream). Held-out test prompts are never offered by retain (a home passes only training
splits).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from retain.data.skills import Example
from retain.methods.base import Consolidation
from retain.methods.replay import Reservoir, example_bytes


@dataclass(frozen=True)
class Rehearsed(Example):
    """An example to rehearse. ``shown``: its prompt already shows a demonstration (a probe of demonstration
    use, given as the full text the model sees), so the SDFT teacher sees the prompt as it is."""

    shown: bool = False


class Rehearsal(Consolidation):
    """Mix the pre-task model's own answers to stored prompts into every batch of the new task."""

    name = "rehearsal"

    @dataclass
    class Config:
        size: int = 256
        ratio: float = 1.0
        max_new_tokens: int = 32
        seed: int = 0

        def problems(self) -> Iterator[tuple[str, str]]:
            if self.size < 1:
                yield "size", f"must be >= 1, got {self.size}"
            if not self.ratio > 0:
                yield "ratio", f"must be > 0 (rehearsed examples per new example), got {self.ratio}"
            if self.max_new_tokens < 1:
                yield "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}"

    def __init__(self, config: "Rehearsal.Config | None" = None) -> None:
        super().__init__(config)
        self.buffer = Reservoir(self.config.size, self.config.seed)
        # answered by the pre-task model in before_task; held only while a task trains
        self.answered: list[Rehearsed] = []

    def offer(self, examples: list[Any]) -> None:
        """Offer the examples' prompts to the reservoir, each distinct prompt once."""
        held = set(self.buffer.items)
        for item in ((e.prompt, bool(getattr(e, "shown", False))) for e in examples):
            if item not in held:
                self.buffer.add(item)
                held = set(self.buffer.items)

    def before_task(self, adapter: Any) -> None:
        items = list(self.buffer.items)
        answers = adapter.answer([Example(prompt=p, demonstration="") for p, _ in items],
                                 max_new_tokens=self.config.max_new_tokens) if items else []
        self.answered = [Rehearsed(prompt=p, demonstration=a, shown=shown)
                         for (p, shown), a in zip(items, answers) if a.strip()]

    def mix(self, batch: list[Any], rng: random.Random) -> list[Any]:
        if not self.answered:
            return batch
        wanted = min(len(self.answered), max(1, round(self.config.ratio * len(batch))))
        return list(batch) + rng.sample(self.answered, wanted)

    def after_task(self, adapter: Any, examples: list[Any]) -> None:
        self.answered = []
        self.offer(examples)

    def memory_bytes(self) -> int:
        return sum(example_bytes(p) for p in self.buffer.items) + sum(example_bytes(e) for e in self.answered)

    # -- state kept between runs: the prompts, how many were offered, the reservoir's generator -------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def extra_state(self) -> dict[str, Any]:
        version, internal, gauss = self.buffer.rng.getstate()
        return {"prompts": [[p, shown] for p, shown in self.buffer.items], "offered": self.buffer.offered,
                "rng": [version, list(internal), gauss]}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        prompts = [(str(p), bool(shown)) for p, shown in extra["prompts"]]
        version, internal, gauss = extra["rng"]
        self.buffer.rng.setstate((version, tuple(internal), gauss))
        if len(prompts) > self.config.size:
            # a smaller buffer than the saved one: a uniform subsample of a uniform sample is still uniform
            prompts = self.buffer.rng.sample(prompts, self.config.size)
        self.buffer.items = prompts
        self.buffer.offered = int(extra["offered"])
