"""Self-generated rehearsal: keep prompts of what the model knew, let the model answer them itself just before
each new task, and mix those answers into the new task's batches.

Followed:

- Self-Synthesized Rehearsal (Huang et al., "Mitigating Catastrophic Forgetting in Large Language Models with
  Self-Synthesized Rehearsal", ACL 2024): rehearsal data is produced by the model itself instead of stored
  human answers, so no original answer needs to be kept.
- Learning without Forgetting (Li and Hoiem, TPAMI 2017 / ECCV 2016): the targets for old behaviour are the
  model's own outputs recorded before the new task starts, so training keeps the new model close to the
  pre-task model on old inputs.

What the buffer holds is prompts only, one group per source: the prior-competence data a learn names
(``--protect``, a home's suite training splits) and, after each task, that task's training prompts. Groups
share the ``size`` fairly (water-filling; each keeps a seeded uniform sample of itself), as per-task episodic
memories do (Chaudhry et al., "On Tiny Episodic Memories in Continual Learning", 2019): with one reservoir
over everything offered, the base's few hundred prompts were outnumbered by each new task's and faded from
the buffer within two tasks. ``before_task`` answers every stored prompt greedily with the current
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
from retain.methods.replay import example_bytes


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
        # one group of prompts per source offered (the protected data, then each task), balanced in size
        self.groups: list[list[tuple[str, bool]]] = []
        self.rng = random.Random(self.config.seed)
        # answered by the pre-task model in before_task; held only while a task trains
        self.answered: list[Rehearsed] = []

    @property
    def items(self) -> list[tuple[str, bool]]:
        """Every stored prompt, with whether it already shows a demonstration."""
        return [item for group in self.groups for item in group]

    def offer(self, examples: list[Any]) -> None:
        """Store the examples' distinct prompts as a new group, then shrink the groups to fair shares."""
        held = set(self.items)
        group: list[tuple[str, bool]] = []
        for item in ((e.prompt, bool(getattr(e, "shown", False))) for e in examples):
            if item not in held:
                held.add(item)
                group.append(item)
        if group:
            self.groups.append(group)
            self._balance()

    def _balance(self) -> None:
        """Water-filling: groups under an equal share keep everything, the rest split what is left; each group
        keeps a seeded uniform sample of itself."""
        room, pending = self.config.size, sorted(range(len(self.groups)), key=lambda g: len(self.groups[g]))
        quota: dict[int, int] = {}
        for rank, g in enumerate(pending):
            share = room // (len(pending) - rank)
            quota[g] = min(len(self.groups[g]), share)
            room -= quota[g]
        self.groups = [group if len(group) <= quota[g] else self.rng.sample(group, quota[g])
                       for g, group in enumerate(self.groups)]

    def before_task(self, adapter: Any) -> None:
        items = self.items
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
        return sum(example_bytes(p) for p in self.items) + sum(example_bytes(e) for e in self.answered)

    # -- state kept between runs: the prompts, how many were offered, the reservoir's generator -------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def extra_state(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"groups": [[[p, shown] for p, shown in group] for group in self.groups],
                "rng": [version, list(internal), gauss]}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        version, internal, gauss = extra["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.groups = [[(str(p), bool(shown)) for p, shown in group] for group in extra["groups"]]
        # a smaller buffer than the saved one keeps fair shares of seeded uniform samples
        self._balance()
