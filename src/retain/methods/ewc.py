"""Elastic Weight Consolidation, separate and online.

- EWC: Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017.
  L = L_new + sum_tasks sum_i (lambda/2) F_i (theta_i - theta*_i)^2, one anchor and diagonal Fisher per task.
- Online EWC: Schwarz et al., "Progress & Compress", ICML 2018. One anchor (the latest parameters) and one
  running Fisher, F <- gamma * F + F_new.
- Fisher estimators follow van de Ven, "On the computation of the Fisher information in continual learning"
  (ICLR 2025 blog track): ``exact`` takes the expectation over the model's own predictive distribution,
  sum_c p_c g_c^2; ``sampled`` draws one label from the model; ``empirical`` uses the true label. Every one
  squares a *per-prediction* gradient; the cheaper squared mini-batch-mean gradient (Avalanche's) is not
  offered: it measures the squared mean gradient, which vanishes at a minimum, not the Fisher.
  ``exact`` costs one gradient per class; over a language model's vocabulary use ``sampled``.
- ``batch_size`` bounds the per-prediction gradient rows computed in one batched call (a classifier makes one
  prediction per example, a causal LM one per target token); ``fisher_samples`` bounds the examples used.
The anchors, Fisher accumulation and penalty are :mod:`retain.methods.importance`'s.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from retain.methods.importance import ImportanceConsolidation
from retain.models.adapter import Adapter


# Per-prediction gradients one batched call may hold, in floats (rows x trainable parameters; about 256 MB in
# float32). A language model makes one prediction per target token, so a chunk of examples can hold hundreds
# of rows: without this bound their gradients (and the batched backward's intermediates) reach gigabytes.
GRAD_FLOATS_PER_CALL = 1 << 26


def per_prediction_grads(adapter: Adapter, scalars: torch.Tensor) -> Iterator[tuple[slice, dict[str, torch.Tensor]]]:
    """The gradient of every entry of ``scalars`` [N] on its own, some rows at a time: ``(rows, name ->
    [len(rows), *param.shape])``.

    One batched vector-Jacobian product per slice (``is_grads_batched``) with rows of the identity, so a chunk
    of predictions costs one forward pass instead of N. Prediction n's scalar depends on the parameters only
    through its own example (the model is in eval mode, nothing mixes examples), so row n is exactly
    d scalars[n] / d theta.
    """
    params = adapter.trainable_parameters()
    n = scalars.shape[0]
    step = max(1, GRAD_FLOATS_PER_CALL // max(1, sum(p.numel() for p in params.values())))
    eye = torch.eye(n, dtype=scalars.dtype, device=scalars.device)
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        grads = torch.autograd.grad(scalars, list(params.values()), grad_outputs=eye[rows], is_grads_batched=True,
                                    allow_unused=True, retain_graph=rows.stop < n)
        yield rows, {name: (g if g is not None else torch.zeros((rows.stop - rows.start, *p.shape), device=p.device))
                     for (name, p), g in zip(params.items(), grads)}


def fisher_problems(config: Any) -> Iterator[tuple[str, str]]:
    """The checks of the options every Fisher-weighted penalty has (EWC's, kfac's): ``lam``, ``gamma``,
    ``fisher``, ``fisher_samples``, ``batch_size``."""
    if not config.lam >= 0:
        yield "lam", f"must be >= 0, got {config.lam}"
    if not 0 < config.gamma <= 1:
        yield "gamma", f"must be in (0, 1], got {config.gamma}"
    if config.fisher not in ("exact", "sampled", "empirical"):
        yield "fisher", f"must be exact, sampled or empirical, got {config.fisher!r}"
    if config.fisher_samples < 1:
        yield "fisher_samples", f"must be >= 1, got {config.fisher_samples}"
    if config.batch_size < 1:
        yield "batch_size", f"must be >= 1, got {config.batch_size}"


def chunks(examples: list[Any], limit: int, size: int, seed: int) -> list[list[Any]]:
    """At most ``limit`` examples (a seeded uniform subset when there are more), cut into chunks of ``size``."""
    if len(examples) > limit:
        examples = random.Random(seed).sample(examples, limit)
    return [examples[i:i + size] for i in range(0, len(examples), size)]


def examples_per_chunk(adapter: Adapter, examples: list[Any], rows: int, per_class: bool = False) -> int:
    """How many examples give about ``rows`` gradient rows in one batched call.

    A batched call costs its rows times the size of its graph, which grows with the examples in it, so the
    rows, not the examples, are what to bound: a classifier makes one prediction per example, a causal LM one
    per target token, and the exact Fisher needs one row per class of each. The first example stands for all.
    """
    with torch.no_grad():
        logits = adapter.predictions(list(examples[:1]))[0]
    per_example = logits.shape[0] * (logits.shape[-1] if per_class else 1)
    return max(1, rows // max(1, per_example))


def diagonal_fisher(adapter: Adapter, examples: list[Any], estimator: str, *, limit: int, chunk: int,
                    seed: int) -> dict[str, torch.Tensor]:
    """Mean over predictions of the squared per-prediction gradient of log p(y|x), y as ``estimator`` says.

    ``chunk`` bounds the gradient rows of one batched call (:func:`examples_per_chunk`).
    """
    params = adapter.trainable_parameters()
    fisher = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in params.items()}
    if not examples:
        return fisher
    gen = torch.Generator().manual_seed(seed)
    chunk = examples_per_chunk(adapter, examples, chunk, per_class=estimator == "exact")
    count = 0
    with torch.enable_grad():
        for batch in chunks(list(examples), limit, chunk, seed):
            logits, targets = adapter.predictions(batch)
            log_probs = F.log_softmax(logits.float(), dim=-1)
            count += log_probs.shape[0]
            if estimator == "exact":
                # every (prediction, class) pair at once, weighted by the model's own p_c
                weight = log_probs.detach().exp().reshape(-1)
                for rows, grads in per_prediction_grads(adapter, log_probs.reshape(-1)):
                    for name, g in grads.items():
                        fisher[name] += torch.einsum("n,n...->...", weight[rows], g.float() ** 2)
                continue
            if estimator == "sampled":
                labels = torch.multinomial(log_probs.detach().exp().cpu(), 1, generator=gen).squeeze(1)
            else:
                labels = targets.cpu()
            chosen = log_probs.gather(1, labels.to(log_probs.device).unsqueeze(1)).squeeze(1)
            for _, grads in per_prediction_grads(adapter, chosen):
                for name, g in grads.items():
                    fisher[name] += (g.float() ** 2).sum(0)
    return {name: f / max(count, 1) for name, f in fisher.items()}


class EWC(ImportanceConsolidation):
    """Quadratic penalty weighted by the diagonal Fisher of earlier tasks (separate or online)."""

    name = "ewc"
    per_prediction_gradients = True

    @dataclass
    class Config:
        lam: float = 100.0
        mode: str = "separate"
        gamma: float = 1.0
        fisher: str = "exact"
        fisher_samples: int = 500
        batch_size: int = 64
        seed: int = 0

        def problems(self) -> Iterator[tuple[str, str]]:
            if self.mode not in ("separate", "online"):
                yield "mode", f"must be separate or online, got {self.mode!r}"
            yield from fisher_problems(self)

    @property
    def scale(self) -> float:
        return self.config.lam / 2

    @property
    def online(self) -> bool:
        return self.config.mode == "online"

    @property
    def decay(self) -> float:
        return self.config.gamma

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        cfg = self.config
        fisher = diagonal_fisher(adapter, examples, cfg.fisher, limit=cfg.fisher_samples, chunk=cfg.batch_size,
                                 seed=cfg.seed + self.learned)
        self.consolidate(adapter, fisher)
