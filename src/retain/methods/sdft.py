"""Self-Distillation Fine-Tuning (Shenfeld, Damani, Hübotter, Agrawal 2026, arXiv 2601.19897).

One model, two roles. The student sees the query alone and samples a completion on-policy; the teacher sees
the query with the expert's demonstration for that same query (the paper's prompt wording by default) and
scores the same sampled tokens; the student is trained to match the teacher's next-token distribution at
every completion position. Followed: REFERENCE section 1 and the official code (idanshen/Self-Distillation):
EMA teacher at rate 0.01, forward KL, the first 3 completion tokens masked, temperature 1, top-p 1, one
sample per prompt, per-sequence mean then batch mean.

Under LoRA the frozen teacher is the model with its adapter disabled and the EMA teacher is a second adapter,
so no second copy of the full model is ever held.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from retain.data.prompts import PAPER_TEACHER_TEMPLATE, validate_template
from retain.data.skills import Example
from retain.errors import check
from retain.methods.base import Objective, tensor_bytes
from retain.methods.divergence import sequence_mean, skip_mask, token_divergence
from retain.models.causal_lm import CausalLMAdapter

TEACHER_ADAPTER = "sdft_teacher"


class SDFT(Objective):
    name = "sdft"

    @dataclass
    class Config:
        teacher: str = "ema"
        ema_rate: float = 0.01
        alpha: float = 0.0
        top_k: int | None = None
        skip_tokens: int = 3
        temperature: float = 1.0
        top_p: float = 1.0
        max_new_tokens: int = 64
        samples_per_prompt: int = 1
        teacher_template: str = PAPER_TEACHER_TEMPLATE

        def validate(self) -> None:
            check(self.teacher in ("ema", "frozen", "live"), f"must be ema, frozen or live, got {self.teacher!r}",
                  field="sdft.teacher")
            check(0.0 < self.ema_rate <= 1.0, f"must be in (0, 1], got {self.ema_rate}", field="sdft.ema_rate")
            check(0.0 <= self.alpha <= 1.0, f"must be in [0, 1], got {self.alpha}", field="sdft.alpha")
            check(self.top_k is None or self.top_k >= 1, f"must be >= 1, got {self.top_k}", field="sdft.top_k")
            check(self.skip_tokens >= 0, f"must be >= 0, got {self.skip_tokens}", field="sdft.skip_tokens")
            check(self.temperature > 0, f"must be > 0, got {self.temperature}", field="sdft.temperature")
            check(0.0 < self.top_p <= 1.0, f"must be in (0, 1], got {self.top_p}", field="sdft.top_p")
            check(self.max_new_tokens >= 1, f"must be >= 1, got {self.max_new_tokens}", field="sdft.max_new_tokens")
            check(self.samples_per_prompt >= 1, f"must be >= 1, got {self.samples_per_prompt}",
                  field="sdft.samples_per_prompt")
            validate_template(self.teacher_template)

    def __init__(self, config: "SDFT.Config | None" = None) -> None:
        self.config = config or SDFT.Config()
        self.config.validate()
        self._teacher_model: torch.nn.Module | None = None
        self._peak_bytes = 0

    # -- the teacher ---------------------------------------------------------------------------------
    def before_task(self, adapter: CausalLMAdapter) -> None:
        kind = self.config.teacher
        if kind == "live" or (kind == "frozen" and adapter.is_lora):
            return
        if adapter.is_lora:
            model = adapter.model
            if TEACHER_ADAPTER not in model.peft_config:
                model.add_adapter(TEACHER_ADAPTER, copy.deepcopy(model.peft_config["default"]))
                model.set_adapter("default")
            self._copy_adapter("default", TEACHER_ADAPTER, adapter, rate=1.0)
            return
        self._teacher_model = copy.deepcopy(adapter.model).eval()
        for p in self._teacher_model.parameters():
            p.requires_grad_(False)

    @staticmethod
    def _copy_adapter(source: str, target: str, adapter: CausalLMAdapter, rate: float) -> None:
        """``target <- rate * source + (1 - rate) * target`` over the LoRA weights."""
        params = dict(adapter.model.named_parameters())
        with torch.no_grad():
            for name, p in params.items():
                if f".{source}." in name:
                    t = params[name.replace(f".{source}.", f".{target}.")]
                    t.mul_(1.0 - rate).add_(p.detach(), alpha=rate)

    def after_step(self, adapter: CausalLMAdapter) -> None:
        if self.config.teacher != "ema":
            return
        rate = self.config.ema_rate
        if adapter.is_lora:
            self._copy_adapter("default", TEACHER_ADAPTER, adapter, rate)
            return
        assert self._teacher_model is not None
        with torch.no_grad():
            for t, s in zip(self._teacher_model.parameters(), adapter.model.parameters()):
                t.mul_(1.0 - rate).add_(s.detach(), alpha=rate)

    def after_task(self, adapter: CausalLMAdapter) -> None:
        """Release the teacher: the next task starts it again from the student, and saved models hold no trace."""
        self._peak_bytes = max(self._peak_bytes, self._teacher_bytes(adapter))
        self._teacher_model = None
        if adapter.is_lora and TEACHER_ADAPTER in adapter.model.peft_config:
            adapter.model.delete_adapter(TEACHER_ADAPTER)
            adapter.model.set_adapter("default")

    def _teacher_bytes(self, adapter: CausalLMAdapter) -> int:
        if self._teacher_model is not None:
            return tensor_bytes(list(self._teacher_model.parameters()))
        if adapter.is_lora:
            return tensor_bytes([p for n, p in adapter.model.named_parameters() if f".{TEACHER_ADAPTER}." in n])
        return 0

    @torch.no_grad()
    def _teacher_logits(self, adapter: CausalLMAdapter, prompts: list[list[int]],
                        completions: list[list[int]]) -> torch.Tensor:
        kind = self.config.teacher
        if kind == "live":
            return adapter.completion_logits(prompts, completions)[0]
        if adapter.is_lora:
            model = adapter.model
            if kind == "frozen":
                with model.disable_adapter():
                    return adapter.completion_logits(prompts, completions)[0]
            model.set_adapter(TEACHER_ADAPTER)
            try:
                return adapter.completion_logits(prompts, completions)[0]
            finally:
                model.set_adapter("default")
        student_model = adapter.model
        adapter.model = self._teacher_model
        try:
            return adapter.completion_logits(prompts, completions)[0]
        finally:
            adapter.model = student_model

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

    def loss(self, adapter: Any, batch: list[Example]) -> torch.Tensor:
        cfg = self.config
        examples, completions = self.rollouts(adapter, batch)
        student_prompts = [adapter.student_ids(e) for e in examples]
        teacher_prompts = [adapter.teacher_ids(e, cfg.teacher_template) for e in examples]
        student_logits, mask = adapter.completion_logits(student_prompts, completions)
        teacher_logits = self._teacher_logits(adapter, teacher_prompts, completions)
        per_token = token_divergence(student_logits, teacher_logits, alpha=cfg.alpha, top_k=cfg.top_k)
        return sequence_mean(per_token, skip_mask(mask, cfg.skip_tokens))

    def memory_bytes(self) -> int:
        """Bytes of the teacher's own weights at their largest (a full copy, a second adapter, or none)."""
        return self._peak_bytes
