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
(``--prior``, a home's suite training splits) and, after each task, that task's training prompts. Groups
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

Two options change what is rehearsed and how:

- ``target="ce"``: the rehearsed examples are not mixed into the objective's batch but trained with
  cross-entropy on the stored answers, a term beside the objective's loss weighted by ``ratio`` (SSR's own
  training: supervised fine-tuning on the synthetic outputs; Learning without Forgetting's loss at temperature
  1 on the recorded argmax answers). No rollouts are sampled for them, so it costs a fraction of SDFT's
  on-policy rehearsal, and the weight does not dilute the new task's loss.
- ``refresh=False``: each prompt is answered once, when it is stored (the protected data by the model that
  had those skills, a task's prompts by the model that has just learned it), and that answer is kept with the
  state. With ``refresh`` (the default) every task re-answers every prompt, so a skill already half forgotten
  is rehearsed with its half-forgotten answers and the loss compounds over a stream (on the demo stream,
  seed 0, sort: 0.88 -> 0.68 after the first skill, then rehearsed with those answers).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from retain.data.skills import Example
from retain.methods.base import Consolidation
from retain.methods.replay import example_bytes


@dataclass(frozen=True)
class Rehearsed(Example):
    """An example to rehearse. ``shown``: its prompt already shows a demonstration (a probe of demonstration
    use, given as the full text the model sees), so the SDFT teacher sees the prompt as it is."""

    shown: bool = False


TARGETS = ("objective", "ce")


def _item(example: Any) -> tuple[str, bool]:
    """How the buffer holds an example: its prompt and whether that prompt already shows a demonstration."""
    return example.prompt, bool(getattr(example, "shown", False))


class Rehearsal(Consolidation):
    """Train every step of a new task on the model's own answers to stored prompts as well (given before the
    task, or when each prompt was stored with ``refresh=False``)."""

    name = "rehearsal"

    @dataclass
    class Config:
        size: int = 256
        ratio: float = 1.0
        max_new_tokens: int = 32
        seed: int = 0
        target: str = "objective"
        refresh: bool = True
        # target "ce": rehearsed examples drawn per new example each step (default: ``ratio``); the term's
        # weight stays ``ratio``, so fewer draws cost less for the same expected gradient
        draw: float | None = None

        def problems(self) -> Iterator[tuple[str, str]]:
            if self.size < 1:
                yield "size", f"must be >= 1, got {self.size}"
            if not self.ratio > 0:
                yield "ratio", f"must be > 0 (rehearsed examples per new example), got {self.ratio}"
            if self.max_new_tokens < 1:
                yield "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}"
            if self.draw is not None and not self.draw > 0:
                yield "draw", f"must be > 0 (rehearsed examples drawn per new example), got {self.draw}"
            if self.draw is not None and self.target != "ce":
                yield "draw", "applies to target=ce only (under target=objective the ratio is the count)"
            if self.target not in TARGETS:
                yield "target", f"must be {' or '.join(TARGETS)}, got {self.target!r}"

    def __init__(self, config: "Rehearsal.Config | None" = None) -> None:
        super().__init__(config)
        # one group of prompts per source offered (the protected data, then each task), balanced in size
        self.groups: list[list[tuple[str, bool]]] = []
        self.rng = random.Random(self.config.seed)
        # refresh=False: each stored prompt's answer, given by the model when the prompt was stored
        self.answers: dict[tuple[str, bool], str] = {}
        # the examples rehearsed during the current task (answered in before_task); held only while it trains
        self.answered: list[Rehearsed] = []

    @property
    def items(self) -> list[tuple[str, bool]]:
        """Every stored prompt, with whether it already shows a demonstration."""
        return [item for group in self.groups for item in group]

    def offer(self, examples: list[Any]) -> None:
        """Store the examples' distinct prompts as a new group, then shrink the groups to fair shares."""
        held = set(self.items)
        group: list[tuple[str, bool]] = []
        for item in map(_item, examples):
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

    def _answer(self, adapter: Any, items: list[tuple[str, bool]]) -> None:
        """Record the model's greedy answers to ``items``."""
        answers = adapter.answer([Example(prompt=p, demonstration="") for p, _ in items],
                                 max_new_tokens=self.config.max_new_tokens) if items else []
        self.answers.update(zip(items, answers))

    def before_task(self, adapter: Any) -> None:
        items = self.items
        self._answer(adapter, [item for item in items if item not in self.answers])
        self.answered = [Rehearsed(prompt=p, demonstration=self.answers[(p, shown)], shown=shown)
                         for p, shown in items if self.answers[(p, shown)].strip()]

    def mix(self, batch: list[Any], rng: random.Random) -> list[Any]:
        """Target ``objective``: ``ratio`` rehearsed examples per new example join the objective's batch."""
        if not self.answered or self.config.target == "ce":
            return batch
        return list(batch) + rng.sample(self.answered, self._wanted(self.config.ratio, len(batch)))

    def draw(self, batch: list[Any], rng: random.Random) -> list[Any]:
        """Target ``ce``: ``draw`` (default ``ratio``) rehearsed examples per new example, for :meth:`drawn_loss`."""
        if not self.answered or self.config.target != "ce":
            return []
        per_example = self.config.ratio if self.config.draw is None else self.config.draw
        return rng.sample(self.answered, self._wanted(per_example, len(batch)))

    def _wanted(self, per_example: float, batch: int) -> int:
        return min(len(self.answered), max(1, round(per_example * batch)))

    def drawn_loss(self, adapter: Any, drawn: list[Any]) -> torch.Tensor | None:
        """Target ``ce``: cross-entropy on the stored answers to this step's rehearsed prompts, times ``ratio``."""
        logits, targets = adapter.predictions(drawn)
        return self.config.ratio * F.cross_entropy(logits.float(), targets)

    def after_task(self, adapter: Any, examples: list[Any]) -> None:
        self.answered = []
        self.offer(examples)
        if self.config.refresh:  # the next task's model answers everything again
            self.answers = {}
        else:  # the task's prompts as the model answers them now it has learned the task
            self._answer(adapter, [item for item in self.items if item not in self.answers])
        self._forget_dropped()

    def protect(self, adapter: Any, examples: list[Any]) -> None:
        """Store the prompts of what the model knows, with the answers given to them (the model's own, unless
        ``--prior`` data brings its own)."""
        self.offer(examples)
        if not self.config.refresh:
            for e in examples:
                if e.demonstration.strip():
                    self.answers.setdefault(_item(e), e.demonstration)
            self._answer(adapter, [item for item in self.items if item not in self.answers])
        self._forget_dropped()

    def _forget_dropped(self) -> None:
        held = set(self.items)
        self.answers = {item: a for item, a in self.answers.items() if item in held}

    def held(self) -> str:
        return f"{len(self.items)} prompts held, size {self.config.size}"

    def memory_bytes(self) -> int:
        return (sum(example_bytes(p) for p in self.items) + sum(example_bytes(e) for e in self.answered)
                + sum(example_bytes(a) for a in self.answers.values()))

    # -- state kept between runs: the prompts, how many were offered, the reservoir's generator -------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def extra_state(self) -> dict[str, Any]:
        version, internal, gauss = self.rng.getstate()
        return {"groups": [[[p, shown] for p, shown in group] for group in self.groups],
                "answers": [[p, shown, a] for (p, shown), a in self.answers.items()],
                "rng": [version, list(internal), gauss]}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        version, internal, gauss = extra["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.groups = [[(str(p), bool(shown)) for p, shown in group] for group in extra["groups"]]
        # state saved without answers (or with refresh) has them given again by the next pre-task model
        self.answers = {} if self.config.refresh else \
            {(str(p), bool(shown)): str(a) for p, shown, a in extra.get("answers", [])}
        # a smaller buffer than the saved one keeps fair shares of seeded uniform samples
        self._balance()
        self._forget_dropped()
