"""A home chooses its own learning rate: a small, budgeted search on short pilot learns.

The rate that learns a skill well differs per skill and per stream: on the embedded model's ``strings2`` stream
the home's rehearsal holds the priors at a rate where its new skills are learned 8 points better than at the
rate chosen on the demo stream. Before a learn trains its candidate, it trains one short *pilot* per candidate
rate (the home's rate times each of ``factors``) from the champion, with the learn's own recipe and protection
but ``fraction`` of its examples, and scores each on data the gate never sees:

- the new skill: ``validation`` prompts held out of the new data's *training* split (no pilot trains on them),
  the mean cross-entropy per answer token of their reference answers given the student's prompt;
- the prior skills: ``prior_per_item`` prompts of every suite entry's *training* split, the same cross-entropy
  of their reference answers, compared with the champion's.

Never the suite's test split or the new skill's held-out split: those are the gate's evidence, and a rate
chosen on them would make the gate's numbers optimistic (hyperparameters chosen on data the evaluation does not
use, as in Chaudhry, Ranzato, Rohrbach and Elhoseiny, "Efficient Lifelong Learning with A-GEM", ICLR 2019).
Cross-entropy, not accuracy: after a pilot of a few steps the answers are mostly still wrong, while the loss
already separates the rates.

The rule (:func:`choose`): among the pilots where no prior entry's loss rose by more than ``tolerance`` nats
per token over the champion's (entry by entry, as the gate judges), the one with the lowest new-skill loss (on a
tie, the lower rate); when none, the one whose worst rise is smallest. The losing pilots are stopped and the
winner goes on: the candidate continues from the winning pilot's weights on the rest of the training split (its
protection started again from the champion's state), so the search costs the losing pilots and the scoring,
not a second learn. That is successive halving's
and Hyperband's economy (Jamieson and Talwalkar, AISTATS 2016; Li, Jamieson, DeSalvo, Rostamizadeh and
Talwalkar, JMLR 2018): many short low-fidelity runs, only the best one carried to the full budget. Every
pilot's losses and seconds, the champion's and the choice are recorded in the version (``config.rate.search``);
``retain reproduce`` trains the winning pilot again and continues it, so it repeats the choice.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator

from retain.data.skills import Example, Skill
from retain.errors import RetainError


@dataclass(frozen=True)
class RateSearch:
    """How a learn searches its rate: candidate multiples of the home's rate, each pilot's share of the learn's
    examples, and the validation the pilots are scored on."""

    # On the embedded model the home's rate is 3x the model's own; x5/3 is 5x, where the home's rehearsal held
    # the priors on the strings2 stream (seed 0: 52% new / 94% kept against 44% / 96% at 3x) but not on the
    # demo stream (97% / 88.6% against 84% / 93%): whether the faster rate is safe depends on the skills.
    factors: tuple[float, ...] = (1.0, 5.0 / 3.0)
    fraction: float = 0.125
    validation: int = 32
    prior_per_item: int = 16
    # Calibrated on the two tuning streams (pilots from the base, seed 0): at x5/3 the worst entry (always
    # `sort`) rose 0.044, 0.053 and 0.072 nats per token on strings2's skills and 0.098, 0.18 and 0.027 on the
    # demo's rotr, swap and ends; at x1 0.03-0.085. 0.08 lets the faster rate through where it was safe.
    tolerance: float = 0.08
    seed: int = 0
    # fewer training examples than this (after the validation is held out): too little to search, keep the rate
    min_examples: int = 64

    def problems(self) -> Iterator[tuple[str, str]]:
        if not self.factors or any(not f > 0 for f in self.factors):
            yield "factors", f"must be positive multiples of the home's rate, got {list(self.factors)}"
        if not 0 < self.fraction <= 1:
            yield "fraction", f"must be in (0, 1], got {self.fraction}"
        if self.validation < 1:
            yield "validation", f"must be >= 1, got {self.validation}"
        if self.prior_per_item < 1:
            yield "prior_per_item", f"must be >= 1, got {self.prior_per_item}"
        if not 0 <= self.tolerance <= 1:
            yield "tolerance", f"must be in [0, 1] (a rise in nats per token), got {self.tolerance}"

    def check(self, where: str) -> "RateSearch":
        for name, problem in self.problems():
            raise RetainError(problem, file=where, field=f"rate_search.{name}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "factors": list(self.factors)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str) -> "RateSearch":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise RetainError(f"unknown field {unknown[0]!r}", file=where, field="rate_search")
        values = dict(raw)
        if "factors" in values:
            values["factors"] = tuple(float(f) for f in values["factors"])
        return cls(**values).check(where)


def split_validation(skill: Skill, size: int, seed: int) -> tuple[list[Example], list[Example]]:
    """(fit, validation): ``size`` distinct prompts of ``skill``'s *training* split held out for scoring the
    pilots (every example of a held-out prompt goes with it); the held-out test split is not read."""
    prompts = sorted({e.prompt for e in skill.train})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[:min(size, max(0, len(prompts) - 1))])
    return [e for e in skill.train if e.prompt not in held], [e for e in skill.train if e.prompt in held]


def prior_validation(suite: list[Any], per_item: int, seed: int) -> list[Skill]:
    """For every suite entry with a training split, a seeded sample of ``per_item`` of its *training* prompts as
    the test of a skill of the same name and scorer: what the pilots are scored on for the priors. Entries
    without training examples (an lm-eval task) are left out; their test splits are never read."""
    out = []
    for item in suite:
        train = list(getattr(item, "train", None) or [])
        if not isinstance(item, Skill) or not train:
            continue
        sample = random.Random(f"{seed}:{item.name}").sample(train, min(per_item, len(train)))
        out.append(Skill(name=item.name, train=[], test=sample, scorer=item.scorer,
                         with_demonstration=item.with_demonstration))
    return out


def choose(pilots: list[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """The pilot a learn continues (losses: lower is better): among those whose ``prior`` (the worst rise of a
    prior entry's loss over the champion's) is at most ``tolerance``, the lowest ``new`` loss (the lower ``lr``
    on a tie); when none is, the smallest ``prior`` rise (the lower ``lr`` on a tie)."""
    kept = [p for p in pilots if p["prior"] <= tolerance + 1e-12]
    if kept:
        return min(kept, key=lambda p: (p["new"], p["lr"]))
    return min(pilots, key=lambda p: (p["prior"], p["lr"]))


@dataclass
class Searched:
    """What a search decided: the rate, the evidence recorded with the version and, when it searched, the
    winning pilot (``model``) and the examples it trained on (the candidate continues it on the rest)."""

    lr: float
    evidence: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    trained: list[Example] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        return "skipped" in self.evidence

    def line(self) -> str:
        """The search in a few words, for the learn's one line about its rate."""
        if self.skipped:
            return f"not searched: {self.evidence['skipped']}"
        return f"searched on pilots ({pilots_text(self.evidence)})"

    def remainder(self, skill: Skill) -> Skill:
        """``skill`` with only what the winning pilot did not train on (the candidate's continuation)."""
        seen = {id(e) for e in self.trained}
        return Skill(name=skill.name, train=[e for e in skill.train if id(e) not in seen], test=skill.test,
                     scorer=skill.scorer, with_demonstration=skill.with_demonstration)


def pilots_text(evidence: dict[str, Any]) -> str:
    """A recorded search's pilots in one line (the learn's line, ``retain show``): each pilot's factor and rate,
    its new-skill loss and its worst prior entry's rise, in nats per token."""
    return "; ".join(f"x{p['factor']:g} = {p['lr']:g}: new-skill loss {p['new']:.3f}, worst prior rise "
                     f"{p['prior']:+.3f}" for p in evidence.get("pilots", []))


def pilot_skill(config: RateSearch, skill: Skill) -> Skill | None:
    """What every pilot trains on (``fraction`` of the training examples, none of the validation prompts) and is
    scored on (the validation, as its test split); ``None`` when the training split is too small to search."""
    fit, validation = split_validation(skill, config.validation, config.seed)
    if len(fit) < config.min_examples or not validation:
        return None
    size = max(1, min(len(fit), round(config.fraction * len(skill.train))))
    chosen = sorted(random.Random(config.seed + 1).sample(range(len(fit)), size))
    return Skill(name=skill.name, train=[fit[i] for i in chosen], test=validation, scorer=skill.scorer,
                 with_demonstration=skill.with_demonstration)


def answer_loss(model: Any, examples: list[Example], batch_size: int = 32) -> float:
    """Mean cross-entropy per answer token of ``examples``' reference answers (what the scorer compares with:
    ``answer``, else the demonstration) given the student's prompt (no demonstration shown), in eval mode
    without gradients."""
    import torch
    import torch.nn.functional as F

    examples = [replace(e, demonstration=e.reference) for e in examples]
    total, tokens = 0.0, 0
    was_training = model.model.training
    model.model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(examples), batch_size):
                logits, targets = model.predictions(examples[i:i + batch_size])
                total += float(F.cross_entropy(logits.float(), targets, reduction="sum"))
                tokens += int(targets.numel())
    finally:
        model.model.train(was_training)
    return total / max(1, tokens)


def prior_loss(model: Any, priors: list[Skill]) -> dict[str, float]:
    """:func:`answer_loss` on each suite entry's sampled training prompts (entry name -> loss); entries shown
    with a demonstration (the in-context probe, whose rule only the demonstration tells) are left out."""
    return {p.name: answer_loss(model, p.test) for p in priors if not p.with_demonstration and p.test}


def worst_rise(losses: dict[str, float], champion: dict[str, float]) -> float:
    """The largest rise of a prior entry's loss over the champion's (the gate, too, judges entry by entry: a
    skill that collapses is not saved by five that held)."""
    return max((losses[name] - champion[name] for name in champion), default=0.0)


def search(config: RateSearch, lr: float, skill: Skill, suite: list[Any], pilot: Callable[[float, Skill], Any],
           champion: Any, *, loss: Callable[[Any, list[Example]], float] = answer_loss,
           priors_loss: Callable[[Any, list[Skill]], dict[str, float]] = prior_loss) -> Searched:
    """Run the search around the home's rate ``lr``: ``pilot(lr, skill)`` trains a pilot from the champion on
    ``skill.train`` (its test split empty) and returns the model. ``champion`` is the loaded champion (its prior
    loss is measured once). Returns the choice with the winning pilot; a pilot is dropped as soon as another
    beats it (:func:`choose` of a longer list picks the previous choice or the newcomer), so at most two are held
    at once."""
    trial = pilot_skill(config, skill)
    if trial is None:
        fit = len(split_validation(skill, config.validation, config.seed)[0])
        return Searched(lr, {"skipped": f"{fit} training examples after holding out the validation (a search "
                                        f"needs {config.min_examples})", "config": config.to_dict()})
    priors = prior_validation(suite, config.prior_per_item, config.seed)
    champion_prior = priors_loss(champion, priors)
    pilots: list[dict[str, Any]] = []
    winner = None
    for factor in sorted(set(config.factors)):
        start = time.process_time()
        # the pilot scores no held-out split: its validation is scored here, by loss
        model = pilot(lr * factor, replace(trial, test=[]))
        losses = priors_loss(model, priors)
        pilots.append({"factor": factor, "lr": lr * factor, "new": loss(model, trial.test),
                       "prior": worst_rise(losses, champion_prior), "priors": losses,
                       "cpu_seconds": round(time.process_time() - start, 2)})
        if choose(pilots, config.tolerance) is pilots[-1]:
            winner = model
        del model
    best = choose(pilots, config.tolerance)
    return Searched(best["lr"], {"config": config.to_dict(), "base_lr": lr, "pilot_examples": len(trial.train),
                                 "validation_prompts": len({e.prompt for e in trial.test}),
                                 "prior_prompts": sum(len(p.test) for p in priors if not p.with_demonstration),
                                 "champion_prior": champion_prior, "pilots": pilots, "chosen": best["factor"]},
                    model=winner, trained=list(trial.train))


def replay(evidence: dict[str, Any], skill: Skill, pilot: Callable[[float, Skill], Any]) -> Searched:
    """A recorded search's winning pilot trained again (``retain reproduce``): the same pilot data at the chosen
    rate, none of the others."""
    config = RateSearch.from_dict(evidence["config"], "the version's rate search")
    trial = pilot_skill(config, skill)
    if trial is None:
        raise RetainError("the recorded rate search has no pilot data for this skill", field="rate.search")
    rate = evidence["base_lr"] * evidence["chosen"]
    return Searched(rate, evidence, model=pilot(rate, replace(trial, test=[])), trained=list(trial.train))
