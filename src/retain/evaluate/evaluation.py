"""Scoring a causal LM on skills: held-out accuracy, the teacher-vs-student gap, and drift from a base model."""

from __future__ import annotations

import torch

from retain.data.skills import Example, Skill
from retain.evaluate.scorers import get_scorer
from retain.evaluate.divergence import token_divergence
from retain.models.causal_lm import CausalLMAdapter


def item_scores(adapter: CausalLMAdapter, skill: Skill, *, with_demonstration: bool | None = None,
                max_new_tokens: int | None = None, template: str | None = None) -> list[float]:
    """The score of each greedy answer (of the adapter's answer length unless ``max_new_tokens``) on the skill's
    held-out examples, in their order: what a paired comparison of two models on the same items needs.

    Prompts carry no demonstration unless the skill is a probe of demonstration use (or it is asked for).
    """
    examples = skill.test
    if not examples:
        return []
    shown = skill.with_demonstration if with_demonstration is None else with_demonstration
    answers = adapter.answer(examples, with_demonstration=shown, max_new_tokens=max_new_tokens, template=template)
    scorer = get_scorer(skill.scorer)
    return [float(scorer(a, e.reference)) for a, e in zip(answers, examples)]


def mean_score(items: list[float]) -> float:
    """The mean of per-item scores (NaN for none): a skill's accuracy."""
    return sum(items) / len(items) if items else float("nan")


def accuracy(adapter: CausalLMAdapter, skill: Skill, *, with_demonstration: bool | None = None,
             max_new_tokens: int | None = None, template: str | None = None) -> float:
    """Mean score of greedy answers on the skill's held-out examples (:func:`item_scores`)."""
    return mean_score(item_scores(adapter, skill, with_demonstration=with_demonstration,
                                  max_new_tokens=max_new_tokens, template=template))


def accuracies(adapter: CausalLMAdapter, skills: list[Skill], **kwargs) -> dict[str, float]:
    return {s.name: accuracy(adapter, s, **kwargs) for s in skills}


@torch.no_grad()
def kl_per_prompt(p: CausalLMAdapter, q: CausalLMAdapter, examples: list[Example], *, shown: list[bool] | None = None,
                  max_new_tokens: int = 32, batch_size: int = 64) -> list[float]:
    """Sequence-level KL(p || q) in nats for each example's prompt: the one definition of drift in retain.

    ``p`` samples a completion (temperature 1) for the prompt (shown with its demonstration where ``shown``);
    the exact per-token KL over the full vocabulary is summed along it, an unbiased estimate of the KL between
    the two models' answer distributions (the measure behind the SDFT paper's 1.26 vs 0.68 nats). Seed the
    caller's generator for repeatable numbers.
    """
    shown = shown or [False] * len(examples)
    out: list[float] = []
    for i in range(0, len(examples), batch_size):
        chunk = list(zip(examples[i:i + batch_size], shown[i:i + batch_size]))
        prompts = [p.teacher_ids(e) if flag else p.student_ids(e) for e, flag in chunk]
        completions = p.generate(prompts, max_new_tokens=max_new_tokens, do_sample=True)
        p_logits, mask = p.completion_logits(prompts, completions)
        q_logits, _ = q.completion_logits(prompts, completions)
        per_token = token_divergence(q_logits.float(), p_logits.float(), alpha=0.0)
        out += [float(v) for v in (per_token * mask).sum(-1)]
    return out


def drift_kl(base: CausalLMAdapter, model: CausalLMAdapter, skills: list[Skill], *,
             max_new_tokens: int = 32, batch_size: int = 64) -> float:
    """Mean :func:`kl_per_prompt` (base || model) over the skills' test prompts."""
    examples = [e for s in skills for e in s.test]
    shown = [s.with_demonstration for s in skills for _ in s.test]
    values = kl_per_prompt(base, model, examples, shown=shown, max_new_tokens=max_new_tokens, batch_size=batch_size)
    return sum(values) / max(1, len(values))
