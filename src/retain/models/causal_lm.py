"""A Hugging Face causal LM once loaded (:mod:`retain.models.loading` loads it), seen the way methods need it.

The parts live apart, and which model runs is always explicit:

- its text side (prompts through the chat template, length limits, completions, decoding):
  :class:`retain.models.lm_text.LMText`, which :class:`CausalLMAdapter` extends;
- the forwards (target-token logits): :meth:`CausalLMAdapter.completion_logits` runs the student, the one
  model being trained (through the module ``accelerator.prepare`` returned while a training forward carries
  gradients, :meth:`CausalLMAdapter.training_forward`);
- generation: :mod:`retain.models.lm_generation` (the student, in eval mode);
- SDFT's teacher: :mod:`retain.models.lm_teacher`, one object per kind (ema, frozen, live);
  :meth:`CausalLMAdapter.teacher_view` returns it and its own ``completion_logits`` runs it;
- saving: :mod:`retain.models.lm_saving`.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from retain.data.skills import Example
from retain.models import lm_generation, lm_saving, lm_teacher
from retain.models.lm_teacher import TEACHER_ADAPTER, TEACHER_KINDS, Teacher
from retain.models.lm_text import LMText

EMBEDDED = "embedded"
__all__ = ["EMBEDDED", "TEACHER_ADAPTER", "TEACHER_KINDS", "CausalLMAdapter"]


class CausalLMAdapter(LMText):
    """A causal LM (optionally under PEFT LoRA) and its tokenizer: the text side it inherits from
    :class:`LMText`, the student's forwards and generation, SDFT's teacher (:meth:`teacher_view`) and saving."""

    def __init__(self, model: nn.Module, tokenizer: Any, source: str, *, max_prompt_tokens: int | None = None,
                 max_new_tokens: int | None = None) -> None:
        config = getattr(model, "config", None)
        positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        super().__init__(tokenizer, source, positions=positions,
                         listed_eos=getattr(getattr(model, "generation_config", None), "eos_token_id", None),
                         max_prompt_tokens=max_prompt_tokens, max_new_tokens=max_new_tokens)
        self.model = model
        self.teacher: Teacher | None = None  # SDFT's teacher between start_teacher and release_teacher
        self._train_module: nn.Module | None = None  # what gradient-carrying forwards run (training_forward)

    @property
    def is_lora(self) -> bool:
        return hasattr(self.model, "peft_config")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    # -- the student's forwards ----------------------------------------------------------------------
    def completion_logits(self, prompts: list[list[int]],
                          completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """The student's logits predicting each completion token: ``[B, Tmax, V]`` and a ``[B, Tmax]`` mask of
        real tokens (:meth:`logits_through`). Inside :meth:`training_forward` a forward with gradients runs the
        prepared module (the same weights)."""
        train = self._train_module is not None and torch.is_grad_enabled()
        return self.logits_through(self._train_module if train else self.model, prompts, completions)

    def logits_through(self, module: nn.Module, prompts: list[list[int]],
                       completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of ``module`` predicting each completion token: ``[B, Tmax, V]`` and a ``[B, Tmax]`` mask.

        Sequences are right-padded so positions stay natural; row ``b``, column ``t`` is the distribution the
        model gives completion token ``t`` after the prompt and tokens ``< t``. Only positions from the
        shortest prompt's last token on go through the LM head (``logits_to_keep``, as TRL's trainers do): a
        prompt's own logits would cost vocabulary x prompt length and are never used.
        """
        seqs = [p + c for p, c in zip(prompts, completions)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, :len(s)] = torch.tensor(s)
            attn[b, :len(s)] = 1
        # The last position to score is width - 2 (a completion's last token is predicted before it), so
        # keeping the last ``width - first`` positions holds every one of them.
        first = min(len(p) for p in prompts) - 1
        logits = module(input_ids=ids.to(self.device), attention_mask=attn.to(self.device),
                        logits_to_keep=width - first).logits
        t_max = max(len(c) for c in completions)
        rows = torch.arange(len(seqs)).unsqueeze(1)
        cols = torch.zeros((len(seqs), t_max), dtype=torch.long)
        mask = torch.zeros((len(seqs), t_max), dtype=torch.bool)
        for b, (p, c) in enumerate(zip(prompts, completions)):
            cols[b, :len(c)] = torch.arange(len(p) - 1 - first, len(p) - 1 - first + len(c))
            mask[b, :len(c)] = True
        return logits[rows, cols.to(logits.device)], mask.to(logits.device)

    @contextmanager
    def training_forward(self, module: nn.Module) -> Iterator[None]:
        """Inside the block, forwards with gradients run ``module``: what ``accelerator.prepare`` returned for
        :attr:`model` (Accelerate's contract: the loss comes from the prepared module, or DDP never
        synchronises gradients). Generation and no-grad scoring keep the unwrapped model."""
        self._train_module = module
        try:
            yield
        finally:
            self._train_module = None

    def target_predictions(self, prompts: list[list[int]],
                           completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[N, V]`` and the completion tokens ``[N]`` they should predict, over every real token."""
        logits, mask = self.completion_logits(prompts, completions)
        targets = torch.zeros(mask.shape, dtype=torch.long, device=logits.device)
        for b, c in enumerate(completions):
            targets[b, :len(c)] = torch.tensor(c)
        return logits[mask], targets[mask]

    def predictions(self, batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and targets for every token of every demonstration (the SFT targets)."""
        prompts = [self.student_ids(e) for e in batch]
        completions = [self.completion_ids(e.demonstration) for e in batch]
        for p, c, e in zip(prompts, completions, batch):
            self.fit_sequence(p, c, e)
        return self.target_predictions(prompts, completions)

    # -- generation (the student) --------------------------------------------------------------------
    def generate(self, prompts: list[list[int]], *, max_new_tokens: int, do_sample: bool,
                 temperature: float = 1.0, top_p: float = 1.0, num_return_sequences: int = 1) -> list[list[int]]:
        """:func:`retain.models.lm_generation.generate` with the student."""
        return lm_generation.generate(self.model, self, prompts, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                      temperature=temperature, top_p=top_p,
                                      num_return_sequences=num_return_sequences)

    def answer(self, examples: list[Example], *, with_demonstration: bool = False, max_new_tokens: int | None = None,
               batch_size: int = 64, template: str | None = None) -> list[str]:
        """:func:`retain.models.lm_generation.answer` with the student: greedy answers to the examples."""
        return lm_generation.answer(self.model, self, examples, with_demonstration=with_demonstration,
                                    max_new_tokens=max_new_tokens, batch_size=batch_size, template=template)

    # -- SDFT's teacher ------------------------------------------------------------------------------
    def start_teacher(self, kind: str) -> Teacher:
        """Start a teacher of ``kind`` (:mod:`retain.models.lm_teacher`): ``ema`` and ``frozen`` snapshot the
        trainable weights now, ``live`` holds none. A previous teacher is released first."""
        if kind not in TEACHER_KINDS:
            raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")
        self.release_teacher()
        self.teacher = lm_teacher.start(kind, self.model, self.logits_through, self.trainable_parameters)
        return self.teacher

    @contextmanager
    def teacher_view(self, kind: str) -> Iterator[Teacher]:
        """The teacher of ``kind``, to run by its ``completion_logits``: inside the block the model is in eval
        mode and nothing records gradients; training mode is restored on the way out.

        ``live`` is the student itself; ``ema`` and ``frozen`` need :meth:`start_teacher` first.
        """
        if kind not in TEACHER_KINDS:
            raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")
        if kind == "live":
            teacher = self.teacher if self.teacher is not None and self.teacher.kind == "live" else \
                lm_teacher.start("live", self.model, self.logits_through, self.trainable_parameters)
        elif self.teacher is None or self.teacher.kind != kind:
            raise RuntimeError(f"no {kind} teacher: call start_teacher({kind!r}) first")
        else:
            teacher = self.teacher
        was_training = self.model.training
        try:
            self.model.eval()
            with torch.no_grad():
                yield teacher
        finally:
            self.model.train(was_training)

    def update_teacher(self, rate: float) -> None:
        """EMA step of an ``ema`` teacher; a ``frozen`` or ``live`` one stays (:meth:`Teacher.update`)."""
        if self.teacher is not None:
            self.teacher.update(rate)

    def teacher_parameters(self) -> dict[str, torch.Tensor]:
        """The teacher's copy of each trainable parameter, by the student's parameter name (``{}`` for live)."""
        return self.teacher.parameters() if self.teacher is not None else {}

    def teacher_bytes(self) -> int:
        """Bytes the teacher holds of its own: the adapter copy, the full model copy, or nothing."""
        return self.teacher.nbytes() if self.teacher is not None else 0

    def release_teacher(self) -> None:
        """Drop the teacher's copy or delete its adapter, so that a saved model holds no trace of it."""
        if self.teacher is not None:
            self.teacher.release()
        self.teacher = None

    # -- saving --------------------------------------------------------------------------------------
    def save(self, out_dir: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """:func:`retain.models.lm_saving.save`: the model (only the trained adapter under LoRA) and tokenizer."""
        lm_saving.save(self.model, self.tokenizer, out_dir, state_dict)
