"""Scoring a causal LM on skills: held-out accuracy, the teacher-vs-student gap, and drift from a base model."""

from __future__ import annotations

import torch

from retain.data.skills import Skill
from retain.evaluate.scorers import get_scorer
from retain.methods.divergence import token_divergence
from retain.models.causal_lm import CausalLMAdapter


def accuracy(adapter: CausalLMAdapter, skill: Skill, *, with_demonstration: bool | None = None,
             max_new_tokens: int = 32, template: str | None = None) -> float:
    """Mean score of greedy answers on the skill's held-out examples.

    Prompts carry no demonstration unless the skill is a probe of demonstration use (or it is asked for).
    """
    examples = skill.test
    if not examples:
        return float("nan")
    shown = skill.with_demonstration if with_demonstration is None else with_demonstration
    answers = adapter.answer(examples, with_demonstration=shown, max_new_tokens=max_new_tokens, template=template)
    scorer = get_scorer(skill.scorer)
    return sum(scorer(a, e.reference) for a, e in zip(answers, examples)) / len(examples)


def accuracies(adapter: CausalLMAdapter, skills: list[Skill], **kwargs) -> dict[str, float]:
    return {s.name: accuracy(adapter, s, **kwargs) for s in skills}


@torch.no_grad()
def drift_kl(base: CausalLMAdapter, model: CausalLMAdapter, skills: list[Skill], *,
             max_new_tokens: int = 32, batch_size: int = 64) -> float:
    """Mean sequence-level KL(base || model) in nats on the skills' test prompts.

    For each prompt the base model samples a completion (temperature 1); the exact per-token KL over the full
    vocabulary is summed along it, which is an unbiased estimate of the KL between the two models' answer
    distributions (the measure behind the SDFT paper's 1.26 vs 0.68 nats).
    """
    examples = [e for s in skills for e in s.test]
    flags = [s.with_demonstration for s in skills for _ in s.test]
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = list(zip(examples[i:i + batch_size], flags[i:i + batch_size]))
        prompts = [base.teacher_ids(e) if shown else base.student_ids(e) for e, shown in chunk]
        completions = base.generate(prompts, max_new_tokens=max_new_tokens, do_sample=True)
        base_logits, mask = base.completion_logits(prompts, completions)
        model_logits, _ = model.completion_logits(prompts, completions)
        per_token = token_divergence(model_logits, base_logits, alpha=0.0)
        total += float((per_token * mask).sum())
        count += len(chunk)
    return total / max(1, count)
