"""A learning rate that adapts to measured drift: start fast, slow down when what the model knew starts to move.

The rate that learns a new skill well differs per skill: a hard one needs a rate at which plain fine-tuning
forgets. This plugin lets a learn start at ``boost`` times its rate and watches what the model knew: the
cross-entropy of the model's own answers (given before the task) on the protected prompts, a fixed sample of
``probes`` of them, measured every ``every`` steps. When it has risen more than ``tolerance`` nats per token
above its value at the start, the rate is multiplied by ``factor`` (never below ``floor`` times the learn's
rate). It is the plateau rule of learning-rate schedulers (PyTorch's ``ReduceLROnPlateau``), applied to drift
on the prior skills instead of to a validation loss: forgetting, not a stalled loss, is the signal. The model's
own answers as the reference follow Learning without Forgetting (Li and Hoiem, ECCV 2016).

Every decision is kept (:meth:`trace`): the step, the drift measured and the multiplier in force after it, so a
version records why its rate was what it was; the measurement is deterministic, so a run with the same seed
takes the same decisions (``retain reproduce`` repeats them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from retain.data.skills import Example
from retain.methods.base import Consolidation
from retain.methods.rehearsal import Rehearsed


class Drift(Consolidation):
    """Multiply the learning rate by ``boost`` at the start of a task and by ``factor`` whenever the protected
    prompts' cross-entropy has drifted more than ``tolerance`` above its start."""

    name = "drift"

    @dataclass
    class Config:
        boost: float = 2.0
        tolerance: float = 0.1
        factor: float = 0.5
        floor: float = 0.25
        every: int = 4
        probes: int = 64
        seed: int = 0

        def problems(self) -> Iterator[tuple[str, str]]:
            if not self.boost > 0:
                yield "boost", f"must be > 0, got {self.boost}"
            if not self.tolerance >= 0:
                yield "tolerance", f"must be >= 0 (nats per token), got {self.tolerance}"
            if not 0 < self.factor < 1:
                yield "factor", f"must be between 0 and 1, got {self.factor}"
            if not 0 < self.floor <= self.boost:
                yield "floor", f"must be > 0 and at most boost ({self.boost}), got {self.floor}"
            if self.every < 1:
                yield "every", f"must be >= 1, got {self.every}"
            if self.probes < 1:
                yield "probes", f"must be >= 1, got {self.probes}"

    def __init__(self, config: "Drift.Config | None" = None) -> None:
        super().__init__(config)
        # the protected prompts watched (text, and whether it already shows a demonstration)
        self.prompts: list[tuple[str, bool]] = []
        self.reference: list[Rehearsed] = []  # this task's prompts with the pre-task model's answers
        self.start = 0.0
        self.multiplier = self.config.boost
        self.steps = 0
        self.decisions: list[dict[str, float]] = []

    def protect(self, adapter: Any, examples: list[Any]) -> None:
        rng = random.Random(self.config.seed)
        items = sorted({(e.prompt, bool(getattr(e, "shown", False))) for e in examples})
        self.prompts = rng.sample(items, min(self.config.probes, len(items)))

    def before_task(self, adapter: Any) -> None:
        self.steps, self.decisions = 0, []
        self.multiplier = self.config.boost
        if not self.prompts:
            self.reference = []
            return
        answers = adapter.answer([Example(prompt=p, demonstration="") for p, _ in self.prompts])
        self.reference = [Rehearsed(prompt=p, demonstration=a, shown=shown)
                          for (p, shown), a in zip(self.prompts, answers) if a.strip()]
        self.start = self._drift_loss(adapter)
        self.decisions.append({"step": 0, "loss": self.start, "drift": 0.0, "multiplier": self.multiplier})

    @torch.no_grad()
    def _drift_loss(self, adapter: Any) -> float:
        if not self.reference:
            return 0.0
        logits, targets = adapter.predictions(self.reference)
        return float(F.cross_entropy(logits.float(), targets))

    def lr_factor(self) -> float:
        return self.multiplier

    def after_step(self, adapter: Any) -> None:
        self.steps += 1
        if not self.reference or self.steps % self.config.every:
            return
        training = adapter.model.training
        adapter.model.eval()
        loss = self._drift_loss(adapter)
        adapter.model.train(training)
        drift = loss - self.start
        if drift > self.config.tolerance and self.multiplier > self.config.floor:
            self.multiplier = max(self.config.floor, self.multiplier * self.config.factor)
        self.decisions.append({"step": self.steps, "loss": loss, "drift": drift, "multiplier": self.multiplier})

    def after_task(self, adapter: Any, examples: list[Any]) -> None:
        self.reference = []

    def trace(self) -> list[dict[str, float]]:
        """Every measurement of the last task: step, loss, drift over the start, multiplier after it."""
        return list(self.decisions)

    def held(self) -> str:
        if not self.decisions:
            return f"{len(self.prompts)} prompts watched"
        cuts = [d for d in self.decisions[1:] if d["multiplier"] < self.config.boost]
        last = self.decisions[-1]["multiplier"]
        return (f"{len(self.prompts)} prompts watched; rate x{self.config.boost:g}"
                + (f" -> x{last:g} from step {int(cuts[0]['step'])}" if cuts else " throughout"))

    def extra_state(self) -> dict[str, Any]:
        return {"prompts": [[p, shown] for p, shown in self.prompts], "decisions": self.decisions}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        self.prompts = [(str(p), bool(shown)) for p, shown in extra["prompts"]]
