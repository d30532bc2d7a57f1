"""Self-Distillation Fine-Tuning (Shenfeld, Damani, Hübotter, Agrawal 2026, arXiv 2601.19897).

One model, two roles. The student sees the query alone and samples a completion on-policy; the teacher sees
the query with the expert's demonstration for that same query and scores the same sampled tokens; the student
is trained to match the teacher's next-token distribution at every completion position.

Followed: Shenfeld et al., "Self-Distillation Enables Continual Learning" (arXiv 2026; the formulas in
docs/references.md), the official code (idanshen/Self-Distillation, ``main.py`` and
``distil_trainer.py``) and TRL's ``trl/experimental/sdft`` (``SDFTTrainer``, ``loss_utils.py``):

- teacher: an EMA of the student at rate 0.01 (official ``ref_model_mixup_alpha``), ``frozen`` (the model as
  it was when the task started, with or without LoRA; TRL's ``base`` is that without PEFT but the bare base
  model, adapter disabled, with it) or ``live`` (the student itself). The model adapter owns it
  (:meth:`retain.models.causal_lm.CausalLMAdapter.teacher_view`): under LoRA a second adapter, in full
  fine-tuning a copy; it always runs in eval mode (no dropout) and without gradients;
- forward KL by default (``alpha`` as TRL: 0 forward, 1 reverse, between the generalised JSD), over the full
  vocabulary or the student's ``top_k`` tokens, renormalised there or, with ``top_k_tail``, with the mass
  outside the top k as one extra bucket (TRL's ``distillation_add_tail``);
- both roles' logits divided by the sampling temperature before the divergence, as TRL's ``_forward_logits``
  and the official ``_get_per_token_logps_and_entropies`` do (the same thing at temperature 1);
- sampling at temperature 1, top-p 1, one sample per prompt; per-sequence mean, then batch mean;
- the teacher prompt: the paper's wording, spelled as the model adapter says (``teacher_template=None``): the
  official code's exact whitespace for outside models, the compact spelling the embedded model was pretrained
  with for it (:mod:`retain.data.prompts`);
- ``skip_tokens``: the first 3 completion tokens are left out of the loss, the official code's
  ``num_loss_tokens_to_skip=3`` (TRL's default is 0). It stays 3 and does not adapt to answer length: it is
  there to stop the student copying the teacher's opening ("Based on the example..."), which a length rule
  cannot see. Short answers are where it bites, so :meth:`SDFT.check_examples` stops a task, before it
  trains, whose demonstrations it would mask almost entirely, and names ``--set sdft.skip_tokens=0``.

One difference remains on purpose: a rollout with no token left after the skip is left out of the batch mean
(:func:`retain.evaluate.divergence.sequence_mean`), where TRL and the official code count it as a zero.
:meth:`SDFT.token_stats` counts the completion tokens trained on, so a run can say how many that was.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from retain.data.prompts import validate_template
from retain.data.skills import Example
from retain.errors import RetainError
from retain.methods.base import Objective
from retain.evaluate.divergence import sequence_mean, skip_mask, token_divergence
from retain.models.causal_lm import CausalLMAdapter

# Below this fraction of the demonstrations' tokens left after the skip, a task would train on almost nothing.
MIN_TRAINED_FRACTION = 0.1


class SDFT(Objective):
    name = "sdft"

    @dataclass
    class Config:
        teacher: str = "ema"
        ema_rate: float = 0.01
        alpha: float = 0.0
        top_k: int | None = None
        top_k_tail: bool = False
        skip_tokens: int = 3
        temperature: float = 1.0
        top_p: float = 1.0
        max_new_tokens: int = 64
        samples_per_prompt: int = 1
        teacher_template: str | None = None

        def problems(self) -> Iterator[tuple[str, str]]:
            if self.teacher not in ("ema", "frozen", "live"):
                yield "teacher", f"must be ema, frozen or live, got {self.teacher!r}"
            if not 0.0 < self.ema_rate <= 1.0:
                yield "ema_rate", f"must be in (0, 1], got {self.ema_rate}"
            if not 0.0 <= self.alpha <= 1.0:
                yield "alpha", f"must be in [0, 1], got {self.alpha}"
            if self.top_k is not None and self.top_k < 1:
                yield "top_k", f"must be >= 1, got {self.top_k}"
            if self.top_k_tail and self.top_k is None:
                yield "top_k_tail", "needs top_k (the tail is the mass outside the top k)"
            if self.skip_tokens < 0:
                yield "skip_tokens", f"must be >= 0, got {self.skip_tokens}"
            if not self.temperature > 0:
                yield "temperature", f"must be > 0, got {self.temperature}"
            if not 0.0 < self.top_p <= 1.0:
                yield "top_p", f"must be in (0, 1], got {self.top_p}"
            if self.max_new_tokens < 1:
                yield "max_new_tokens", f"must be >= 1, got {self.max_new_tokens}"
            if self.samples_per_prompt < 1:
                yield "samples_per_prompt", f"must be >= 1, got {self.samples_per_prompt}"
            if self.teacher_template is not None:
                try:
                    validate_template(self.teacher_template)
                except RetainError as err:
                    yield "teacher_template", err.message

    def __init__(self, config: "SDFT.Config | None" = None) -> None:
        super().__init__(config)
        self._peak_bytes = 0
        self._trained_tokens = 0
        self._total_tokens = 0

    # -- before training -----------------------------------------------------------------------------
    def check_examples(self, adapter: CausalLMAdapter, examples: list[Example]) -> None:
        """Stop, before training, a task whose demonstrations ``skip_tokens`` would mask (almost) entirely.

        The rollouts are not sampled yet, so the demonstrations' token lengths (EOS left out) stand in for them.
        """
        skip = self.config.skip_tokens
        if skip == 0 or not examples:
            return
        lengths = [len(adapter.completion_ids(e.demonstration)) - 1 for e in examples]
        kept = sum(max(0, n - skip) for n in lengths)
        fraction = kept / max(1, sum(lengths))
        if fraction < MIN_TRAINED_FRACTION:
            span = f"{min(lengths)}" if min(lengths) == max(lengths) else f"{min(lengths)} to {max(lengths)}"
            raise RetainError(f"masking the first {skip} completion tokens leaves {fraction:.0%} of the "
                              f"demonstrations' tokens (answers are {span} tokens long), so SDFT would train "
                              "on almost nothing; try --set sdft.skip_tokens=0", field="sdft.skip_tokens")

    def before_task(self, adapter: CausalLMAdapter) -> None:
        adapter.start_teacher(self.config.teacher)

    # -- the loss ------------------------------------------------------------------------------------
    def rollouts(self, adapter: CausalLMAdapter, batch: list[Example]) -> tuple[list[Example], list[list[int]]]:
        """On-policy samples of the student for every prompt (``samples_per_prompt`` each)."""
        cfg = self.config
        prompts = [adapter.student_ids(e) for e in batch]
        completions = adapter.generate(prompts, max_new_tokens=cfg.max_new_tokens, do_sample=True,
                                       temperature=cfg.temperature, top_p=cfg.top_p,
                                       num_return_sequences=cfg.samples_per_prompt)
        examples = [e for e in batch for _ in range(cfg.samples_per_prompt)]
        return examples, completions

    def loss(self, adapter: CausalLMAdapter, batch: list[Example]) -> torch.Tensor:
        cfg = self.config
        examples, completions = self.rollouts(adapter, batch)
        student_prompts = [adapter.student_ids(e) for e in examples]
        # a rehearsed prompt that already shows a demonstration is not wrapped in the template a second time
        teacher_prompts = [adapter.student_ids(e) if getattr(e, "shown", False)
                           else adapter.teacher_ids(e, cfg.teacher_template) for e in examples]
        student_logits, mask = adapter.completion_logits(student_prompts, completions)
        with adapter.teacher_view(cfg.teacher) as teacher:
            teacher_logits = teacher.completion_logits(teacher_prompts, completions)[0]
        per_token = token_divergence(student_logits / cfg.temperature, teacher_logits / cfg.temperature,
                                     alpha=cfg.alpha, top_k=cfg.top_k, tail=cfg.top_k_tail)
        trained = skip_mask(mask, cfg.skip_tokens)
        self._trained_tokens += int(trained.sum())
        self._total_tokens += int(mask.sum())
        return sequence_mean(per_token, trained)

    def token_stats(self) -> dict[str, int]:
        """Completion tokens sampled (``total``) and left in the loss after the skip (``trained``), so far."""
        return {"trained": self._trained_tokens, "total": self._total_tokens}

    # -- after training ------------------------------------------------------------------------------
    def after_step(self, adapter: CausalLMAdapter) -> None:
        if self.config.teacher == "ema":
            adapter.update_teacher(self.config.ema_rate)

    def after_task(self, adapter: CausalLMAdapter) -> None:
        """Release the teacher: the next task starts it again from the student, and saved models hold no trace."""
        self._peak_bytes = max(self._peak_bytes, adapter.teacher_bytes())
        adapter.release_teacher()

    def memory_bytes(self) -> int:
        """Bytes of the teacher's own weights at their largest (a full copy, a second adapter, or none)."""
        return self._peak_bytes
