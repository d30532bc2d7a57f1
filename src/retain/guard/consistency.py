"""Consistency: is each line's answer what the model produces once it has been shown the OTHER lines of the
same skill?

A poisoned line of a new skill (a label flip, a near miss one character off, a triggered line whose answer is
another function of the input) disagrees with the rule the rest of the skill's lines teach. Two ways to show
a model the other lines:

- ``context``: as in-context examples (earlier turns of the conversation) before the line's prompt; for models
  that learn from examples in context;
- ``fit``: in the weights, by cross-fitting (the held-out predictions of confident learning, Northcutt,
  Jiang and Chuang, JAIR 2021): the lines are split into folds, a copy of the model is fine-tuned briefly on the
  other folds, and each held-out line is scored by that copy. Used for small models, where a few passes over
  a file take seconds, and for models that cannot use in-context examples (the embedded model was never
  shown several examples in one prompt).

``auto`` asks the model in context on a sample first and falls back to ``fit`` when in context it matches
fewer than half of the sampled lines.

Each line is scored by the demonstration's per-token negative log-likelihood under the model that did not
see it: how far (within the skill, :func:`excess`) its mean and its largest token NLL (a near miss is one very
surprising token) lie above the typical line; the line's score is the larger of the two over the cut-off.
The fold models also give the representation detectors (:mod:`retain.guard.representation`) the hidden states
of a model trained on each line, which is where Tran et al. and Chen et al. look.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from retain.data.skills import Example
from retain.guard.representation import LineStats, forward_stats, groups

# A line is flagged when its held-out mean or worst-token loss is this many spreads above the median
# (:func:`excess`); the spread is at least SCALE_FLOOR nats.
CONSISTENCY_CUT = 7.0
SCALE_FLOOR = 0.1
FOLDS = 2
EPOCHS = 8
LR = 1e-3
BATCH = 16
# Cross-fitting copies and fine-tunes the model: only for models up to this many parameters.
FIT_MAX_PARAMETERS = 50_000_000
CONTEXT_EXAMPLES = 4
CONTEXT_SAMPLE = 16


@dataclass
class Consistency:
    """Per line: the held-out statistics, the excess of mean and max token NLL within its skill, the score."""

    mode: str
    stats: list[LineStats]
    z_mean: list[float] = field(default_factory=list)
    z_max: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    # Each line under a model that was trained on it: the representation detectors' features.
    trained: list[LineStats] = field(default_factory=list)


def _parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _fine_tune(adapter: Any, lines: list[Example], epochs: int, lr: float, seed: int) -> Any:
    """A copy of ``adapter`` fine-tuned on ``lines`` (SFT on the demonstrations, AdamW)."""
    from retain.models.causal_lm import CausalLMAdapter

    model = copy.deepcopy(adapter.model)
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    student = CausalLMAdapter(model, adapter.tokenizer, adapter.source)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    order = list(range(len(lines)))
    pairs = [(student.student_ids(e), student.completion_ids(e.demonstration)) for e in lines]
    with torch.enable_grad():
        for _ in range(epochs):
            rng.shuffle(order)
            for start in range(0, len(order), BATCH):
                batch = [pairs[i] for i in order[start:start + BATCH]]
                logits, mask = student.completion_logits([p for p, _ in batch], [c for _, c in batch])
                targets = torch.zeros(mask.shape, dtype=torch.long, device=logits.device)
                for b, (_, c) in enumerate(batch):
                    targets[b, :len(c)] = torch.tensor(c)
                loss = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")
                loss = (loss * mask).sum() / mask.sum()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
    model.eval()
    return student


def _with_context(examples: list[Example], i: int, others: list[int]) -> Example:
    turns: tuple[tuple[str, str], ...] = ()
    for j in others:
        turns += (("user", examples[j].prompt), ("assistant", examples[j].demonstration))
    return Example(prompt=examples[i].prompt, demonstration=examples[i].demonstration,
                   context=examples[i].context + turns)


def _context_examples(examples: list[Example], seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = list(examples)
    for group in groups(examples):
        for i in group:
            others = [j for j in group if j != i]
            out[i] = _with_context(examples, i, rng.sample(others, min(CONTEXT_EXAMPLES, len(others))))
    return out


def context_works(adapter: Any, examples: list[Example], seed: int = 0) -> bool:
    """Whether, shown other lines of its skill in context, the model answers at least half of a sample of lines
    with their own demonstration's content."""
    from retain.guard.signals import content

    if not getattr(adapter.tokenizer, "chat_template", None):
        return False
    rng = random.Random(seed)
    sample = rng.sample(range(len(examples)), min(CONTEXT_SAMPLE, len(examples)))
    shown = _context_examples(examples, seed)
    try:
        answers = adapter.answer([shown[i] for i in sample])
    except Exception:  # a prompt over the model's length: in context is not an option for this file
        return False
    right = sum(content(a) == content(examples[i].demonstration) for a, i in zip(answers, sample))
    return right >= 0.5 * len(sample)


def held_out_stats(adapter: Any, examples: list[Example], mode: str = "auto", seed: int = 0, folds: int = FOLDS,
                   epochs: int = EPOCHS, lr: float = LR) -> tuple[str, list[LineStats], list[LineStats]]:
    """Each line's statistics under a model shown the other lines (see the module docstring for ``mode``), and
    under a model trained on it (``fit``; in ``context`` mode the same statistics)."""
    if mode == "auto":
        mode = "context" if context_works(adapter, examples, seed) else "fit"
    if mode == "fit" and _parameters(adapter.model) > FIT_MAX_PARAMETERS:
        mode = "context"
    if mode == "context":
        shown = forward_stats(adapter, _context_examples(examples, seed))
        return mode, shown, shown
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    stats: list[LineStats | None] = [None] * len(examples)
    trained: list[LineStats | None] = [None] * len(examples)
    for k in range(folds):
        held = order[k::folds]
        held_set = set(held)
        rest = [i for i in order if i not in held_set]
        fitted = _fine_tune(adapter, [examples[i] for i in rest], epochs, lr, seed + k)
        for i, s in zip(held, forward_stats(fitted, [examples[i] for i in held])):
            stats[i] = s
        # the lines this copy trained on, seen by it: the representations Tran et al. and Chen et al. read
        for i, s in zip(rest, forward_stats(fitted, [examples[i] for i in rest])):
            if trained[i] is None:
                s.model = k
                trained[i] = s
        del fitted
    return mode, [s for s in stats if s is not None], [s for s in trained if s is not None]


def excess(values: list[float], floor: float = SCALE_FLOOR) -> list[float]:
    """How far above the typical line each value is, in units of the spread of the lower lines:
    ``(v - P50) / max(P80 - P50, floor)``. Held-out losses are heavy-tailed (most lines of a learnt skill cost
    almost nothing), so a Gaussian z-score (or a MAD near 0) calls a fifth of a clean file outliers; the
    quantiles below P80 are untouched by up to 20% poison."""
    p50, p80 = (float(v) for v in np.percentile(values, [50, 80]))
    scale = max(p80 - p50, floor)
    return [(v - p50) / scale for v in values]


def consistency(adapter: Any, examples: list[Example], mode: str = "auto", seed: int = 0,
                cut: float = CONSISTENCY_CUT) -> Consistency:
    """Score every line by how unlikely its demonstration is to a model shown the other lines of its skill."""
    import time

    start = time.perf_counter()
    mode, stats, trained = held_out_stats(adapter, examples, mode, seed)
    z_mean, z_max, scores = score_lines(stats, examples, cut)
    return Consistency(mode, stats, z_mean, z_max, scores, time.perf_counter() - start, trained)


def score_lines(stats: list[LineStats], examples: list[Example], cut: float = CONSISTENCY_CUT
                ) -> tuple[list[float], list[float], list[float]]:
    """Per line, within its skill: the excess of the mean and of the worst token NLL, and the score (0.5 when
    either reaches ``cut``)."""
    z_mean, z_max = [0.0] * len(examples), [0.0] * len(examples)
    for group in groups(examples):
        if len(group) < 4:
            continue
        for i, a, b in zip(group, excess([stats[i].mean_nll for i in group]),
                           excess([stats[i].max_nll for i in group])):
            z_mean[i], z_max[i] = a, b
    return z_mean, z_max, [min(1.0, 0.5 * max(0.0, a, b) / cut) for a, b in zip(z_mean, z_max)]


def features(stats: list[LineStats]) -> list[np.ndarray]:
    return [s.features for s in stats]
