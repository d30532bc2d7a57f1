"""The one place that knows Hugging Face causal LMs once loaded (:mod:`retain.models.loading` loads them):
prompts through the chat template, length limits, target-token logits, sampling, SDFT's teacher, and
``save_pretrained``.

Lengths: a prompt (the student's, or the teacher's with its demonstration) longer than ``max_prompt_tokens`` is
rejected, never truncated, with one line naming the file and line it came from: cutting a prompt would train
on a task the user did not write, and cutting it from the left removes the chat template's start. The default
limit is the model's positions (``max_position_embeddings``) less the tokens kept for generation
(``max_new_tokens``, else :data:`RESERVED_NEW_TOKENS`, SDFT's rollout length); generation never runs past the
positions."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from retain.data.prompts import OFFICIAL_TEACHER_TEMPLATE, PAPER_TEACHER_TEMPLATE, teacher_message
from retain.data.skills import Example
from retain.errors import RetainError
from retain.models.adapter import is_sharded

EMBEDDED = "embedded"
TEACHER_ADAPTER = "sdft_teacher"  # the PEFT adapter that holds SDFT's teacher under LoRA
TEACHER_KINDS = ("ema", "frozen", "live")
RESERVED_NEW_TOKENS = 64  # positions kept for generation when max_new_tokens is not set (SDFT's default)
ANSWER_TOKENS = 32  # greedy answers' length when neither the caller nor max_new_tokens says


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor shard (gathered from every process), or ``t`` itself."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def default_teacher_template(tokenizer: Any) -> str:
    """The embedded model's own template for it and every model derived from it (recognised by its chat
    template, which they keep), the official code's for every other model (see :mod:`retain.data.prompts`)."""
    from retain.models.tiny.tokenizer import CHAT_TEMPLATE
    return PAPER_TEACHER_TEMPLATE if getattr(tokenizer, "chat_template", None) == CHAT_TEMPLATE \
        else OFFICIAL_TEACHER_TEMPLATE


class CausalLMAdapter:
    """A causal LM and its tokenizer, seen the way methods need them.

    Prompts go through the tokenizer's chat template when it has one (an example's ``context`` messages, then
    one user message, generation prompt added), else the raw text followed by a newline. A completion ends
    with the tokenizer's EOS token; generation stops at any of :attr:`eos_ids` (the tokenizer's and every one
    the generation config lists, as chat models have several). The teacher prompt uses
    :attr:`teacher_template` unless a template is given. Prompts longer than :attr:`max_prompt_tokens` are
    rejected (see the module's docstring).
    """

    def __init__(self, model: nn.Module, tokenizer: Any, source: str, *, max_prompt_tokens: int | None = None,
                 max_new_tokens: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.eos_id = tokenizer.eos_token_id
        listed = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        listed = listed if isinstance(listed, (list, tuple)) else [listed]
        self.eos_ids = list(dict.fromkeys(t for t in [self.eos_id, *listed] if t is not None))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        config = getattr(model, "config", None)
        self.positions: int | None = getattr(config, "max_position_embeddings", None) or \
            getattr(config, "n_positions", None)
        self.max_new_tokens = max_new_tokens
        self.max_prompt_tokens = self._prompt_limit(max_prompt_tokens)
        self.teacher_template = default_teacher_template(tokenizer)
        self._teacher_kind: str | None = None
        self._teacher_model: nn.Module | None = None  # full fine-tuning: the teacher's own copy of the model
        self._student_adapter = "default"  # under LoRA: the adapter that trains
        self._scorer: nn.Module | None = None  # what completion_logits runs, when not self.model
        self._train_module: nn.Module | None = None  # what gradient-carrying forwards run (training_forward)

    @property
    def is_lora(self) -> bool:
        return hasattr(self.model, "peft_config")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    # -- lengths -------------------------------------------------------------------------------------
    def _prompt_limit(self, asked: int | None) -> int | None:
        """``asked``, checked against the positions, or the positions less the tokens kept for generation."""
        new = self.max_new_tokens or RESERVED_NEW_TOKENS
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise RetainError(f"must be >= 1, got {self.max_new_tokens}", field="--max-new-tokens")
        if asked is not None and asked < 1:
            raise RetainError(f"must be >= 1, got {asked}", field="--max-prompt-tokens")
        if self.positions is None:
            return asked
        if asked is not None and asked + new > self.positions:
            raise RetainError(f"{asked} prompt tokens + {new} new tokens exceed the model's {self.positions} "
                              "positions (max_position_embeddings)", field="--max-prompt-tokens")
        if new >= self.positions:
            raise RetainError(f"{new} new tokens leave no room for a prompt in the model's {self.positions} "
                              "positions (max_position_embeddings)", field="--max-new-tokens")
        return asked if asked is not None else self.positions - new

    def _fit(self, ids: list[int], example: Example, whose: str, field: str) -> list[int]:
        if self.max_prompt_tokens is not None and len(ids) > self.max_prompt_tokens:
            file, _, line = (example.source or "").rpartition(":")
            raise RetainError(f"the {whose} prompt is {len(ids)} tokens, over the limit of {self.max_prompt_tokens}"
                              f" (--max-prompt-tokens; the model has {self.positions} positions): shorten it or "
                              "drop the line", file=file or None, line=int(line) if line.isdigit() else None,
                              field=field)
        return ids

    def check_lengths(self, examples: list[Example], *, teacher: bool = False,
                      template: str | None = None) -> None:
        """Raise, before anything runs, for the first example whose student prompt (or teacher prompt, when
        ``teacher``) is over :attr:`max_prompt_tokens`, or whose prompt and demonstration together exceed
        the positions (an SFT target)."""
        for e in examples:
            self.student_ids(e)
            if teacher:
                self.teacher_ids(e, template)
            if e.demonstration:
                self._fit_sequence(self.student_ids(e), self.completion_ids(e.demonstration), e)

    def _fit_sequence(self, prompt: list[int], completion: list[int], example: Example) -> None:
        if self.positions is not None and len(prompt) + len(completion) > self.positions:
            file, _, line = (example.source or "").rpartition(":")
            raise RetainError(f"prompt and demonstration are {len(prompt) + len(completion)} tokens, over the "
                              f"model's {self.positions} positions: shorten them or drop the line",
                              file=file or None, line=int(line) if line.isdigit() else None, field="demonstration")

    # -- text -> ids ---------------------------------------------------------------------------------
    def prompt_ids(self, message: str, context: tuple[tuple[str, str], ...] = ()) -> list[int]:
        """The prompt of one user ``message`` after the ``context`` messages (a system message, earlier turns)."""
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": r, "content": c} for r, c in context] + [{"role": "user", "content": message}]
            out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)
        if context:
            raise RetainError("conversational data (messages before the last user turn) needs a tokenizer with a "
                              f"chat template, and {self.source}'s has none", field="prompt")
        return self.tokenizer(message + "\n", add_special_tokens=True)["input_ids"]

    def student_ids(self, example: Example) -> list[int]:
        return self._fit(self.prompt_ids(example.prompt, example.context), example, "student's", "prompt")

    def teacher_ids(self, example: Example, template: str | None = None) -> list[int]:
        """The teacher's prompt: the same context, and the last user turn with the demonstration in it (TRL's
        ``DemonstrationTeacherContextBuilder`` for conversational prompts)."""
        ids = self.prompt_ids(teacher_message(example, template or self.teacher_template), example.context)
        return self._fit(ids, example, "teacher's (prompt with its demonstration)", "demonstration")

    def completion_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_id]

    # -- scoring -------------------------------------------------------------------------------------
    def completion_logits(self, prompts: list[list[int]], completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits predicting each completion token: ``[B, Tmax, V]`` and a ``[B, Tmax]`` mask of real tokens.

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
        model = self._forward_module()
        logits = model(input_ids=ids.to(self.device), attention_mask=attn.to(self.device),
                       logits_to_keep=width - first).logits
        t_max = max(len(c) for c in completions)
        rows = torch.arange(len(seqs)).unsqueeze(1)
        cols = torch.zeros((len(seqs), t_max), dtype=torch.long)
        mask = torch.zeros((len(seqs), t_max), dtype=torch.bool)
        for b, (p, c) in enumerate(zip(prompts, completions)):
            cols[b, :len(c)] = torch.arange(len(p) - 1 - first, len(p) - 1 - first + len(c))
            mask[b, :len(c)] = True
        return logits[rows, cols.to(logits.device)], mask.to(logits.device)

    def _forward_module(self) -> nn.Module:
        """The teacher inside :meth:`teacher_view`; the prepared module for forwards that carry gradients
        inside :meth:`training_forward` (so DDP synchronises their gradients); else the model."""
        if self._scorer is not None:
            return self._scorer
        if self._train_module is not None and torch.is_grad_enabled():
            return self._train_module
        return self.model

    @contextmanager
    def training_forward(self, module: nn.Module) -> Iterator[None]:
        """Inside the block, forwards with gradients run ``module``: what ``accelerator.prepare`` returned for
        :attr:`model` (Accelerate's contract: the loss comes from the prepared module, or DDP never
        synchronises gradients). Generation and no-grad scoring (the teacher) keep the unwrapped model."""
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
            self._fit_sequence(p, c, e)
        return self.target_predictions(prompts, completions)

    # -- generation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], *, max_new_tokens: int, do_sample: bool,
                 temperature: float = 1.0, top_p: float = 1.0, num_return_sequences: int = 1) -> list[list[int]]:
        """Completions (ending with the EOS id that stopped them, when one did) for left-padded prompts; at most
        ``max_new_tokens`` and never past the model's positions."""
        width = max(len(p) for p in prompts)
        if self.positions is not None:
            max_new_tokens = max(1, min(max_new_tokens, self.positions - width))
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, width - len(p):] = torch.tensor(p)
            attn[b, width - len(p):] = 1
        was_training = self.model.training
        self.model.eval()
        kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                      num_return_sequences=num_return_sequences, pad_token_id=self.pad_id,
                                      eos_token_id=self.eos_ids)
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.is_lora and is_sharded(self.model):
            # PEFT's generate runs the base model, never the root FSDP2 wrapped (the PeftModel), whose forward is
            # where FSDP2 sets itself up and gathers the root's own parameters (kept until the next backward):
            # one token through the root first does both.
            self.model(input_ids=ids[:, -1:].to(self.device))
        out = self.model.generate(input_ids=ids.to(self.device), attention_mask=attn.to(self.device), **kwargs)
        self.model.train(was_training)
        completions = []
        for row in out[:, width:].tolist():
            stop = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
            completions.append(row if stop is None else row[:stop + 1])
        return completions

    def decode(self, completion: list[int]) -> str:
        return self.tokenizer.decode([t for t in completion if t not in self.eos_ids], skip_special_tokens=True)

    def answer(self, examples: list[Example], *, with_demonstration: bool = False, max_new_tokens: int | None = None,
               batch_size: int = 64, template: str | None = None) -> list[str]:
        """Greedy answers to the examples' prompts (shown with their demonstrations if asked), of at most
        ``max_new_tokens``, else :attr:`max_new_tokens`, else :data:`ANSWER_TOKENS` tokens."""
        max_new_tokens = max_new_tokens or self.max_new_tokens or ANSWER_TOKENS
        answers = []
        for i in range(0, len(examples), batch_size):
            chunk = examples[i:i + batch_size]
            prompts = [self.teacher_ids(e, template) if with_demonstration else self.student_ids(e) for e in chunk]
            answers += [self.decode(c) for c in self.generate(prompts, max_new_tokens=max_new_tokens, do_sample=False)]
        return answers

    # -- SDFT's teacher (Shenfeld et al. 2026; TRL's SDFTTrainer._setup_teacher_model) ------------------
    def start_teacher(self, kind: str) -> None:
        """Snapshot the current trainable weights as the teacher (``ema``, ``frozen``), or use none (``live``).

        Under LoRA the snapshot is a second PEFT adapter copied from the active one (so the base weights are
        never duplicated, as TRL's ``PEFTAdapterEMACallback``); in full fine-tuning it is a frozen copy of the
        model. Either way a ``frozen`` teacher is the model as it was at the start of the task. Trainable
        parameters outside the LoRA adapter, if any, are shared with the student.
        """
        if kind not in TEACHER_KINDS:
            raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")
        self.release_teacher()
        self._teacher_kind = kind
        if kind == "live":
            return
        if self.is_lora:
            self._student_adapter = self.model.active_adapter
            self.model.add_adapter(TEACHER_ADAPTER, copy.deepcopy(self.model.peft_config[self._student_adapter]))
            self.model.set_adapter(self._student_adapter)  # the teacher's adapter does not train
        elif is_sharded(self.model):
            self._teacher_model = self._full_copy().eval().requires_grad_(False)
            return  # already the student's weights
        else:
            self._teacher_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        student = self.trainable_parameters()
        with torch.no_grad():
            for name, t in self.teacher_parameters().items():
                t.copy_(_full(student[name]))  # a LoRA teacher's copy is whole under FSDP2

    def update_teacher(self, rate: float) -> None:
        """EMA step of an ``ema`` teacher: ``teacher <- (1 - rate) * teacher + rate * student`` (the official
        code's ``ref_model_mixup_alpha``, TRL's ``teacher_update_rate``); a ``frozen`` or ``live`` one stays."""
        if self._teacher_kind != "ema":
            return
        student = self.trainable_parameters()
        with torch.no_grad():
            for name, t in self.teacher_parameters().items():
                t.mul_(1.0 - rate).add_(_full(student[name].detach()), alpha=rate)

    def _full_copy(self) -> nn.Module:
        """An unsharded copy of a model FSDP2 shards (which cannot be deep-copied): the same class, built from
        its config, holding the full weights every process gathers (each then keeps a whole copy)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        from torch.distributed.fsdp import FSDPModule

        full = get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True))
        cls = next(c for c in type(self.model).__mro__ if not issubclass(c, FSDPModule))  # FSDP2's subclass's base
        with torch.random.fork_rng(devices=[]):  # its random initialisation must not move the sampling's seed
            teacher = cls(self.model.config).to(device=self.device, dtype=next(iter(full.values())).dtype)
        teacher.load_state_dict(full)
        return teacher

    @contextmanager
    def teacher_view(self, kind: str) -> Iterator[None]:
        """Inside the block, :meth:`completion_logits` runs the teacher, in eval mode and without gradients.

        ``live`` is the student itself (in eval mode); ``ema`` and ``frozen`` need :meth:`start_teacher` first.
        Training mode, the active adapter and the scored module are restored on the way out.
        """
        if kind not in TEACHER_KINDS:
            raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")
        if kind != "live" and kind != self._teacher_kind:
            raise RuntimeError(f"no {kind} teacher: call start_teacher({kind!r}) first")
        was_training = self.model.training
        swapped = kind != "live" and self.is_lora
        try:
            self.model.eval()
            if swapped:
                self.model.set_adapter(TEACHER_ADAPTER)
            elif kind != "live":
                self._scorer = self._teacher_model
            with torch.no_grad():
                yield
        finally:
            self._scorer = None
            if swapped:
                self.model.set_adapter(self._student_adapter)
            self.model.train(was_training)

    def teacher_parameters(self) -> dict[str, torch.Tensor]:
        """The teacher's copy of each trainable parameter, by the student's parameter name (``{}`` for live)."""
        if self._teacher_kind in (None, "live"):
            return {}
        student = self.trainable_parameters()
        if self._teacher_model is not None:
            copies = dict(self._teacher_model.named_parameters())
            return {name: copies[name] for name in student}
        tag = f".{self._student_adapter}."
        params = dict(self.model.named_parameters())
        return {name: params[name.replace(tag, f".{TEACHER_ADAPTER}.")] for name in student if tag in name}

    def teacher_bytes(self) -> int:
        """Bytes the teacher holds of its own: the adapter copy, the full model copy, or nothing."""
        held = self._teacher_model.parameters() if self._teacher_model is not None else \
            self.teacher_parameters().values()
        return sum(t.numel() * t.element_size() for t in held)

    def release_teacher(self) -> None:
        """Drop the teacher's copy or delete its adapter, so that a saved model holds no trace of it."""
        self._teacher_model = None
        self._teacher_kind = None
        if self.is_lora and TEACHER_ADAPTER in self.model.peft_config:
            self.model.delete_adapter(TEACHER_ADAPTER)
            self.model.set_adapter(self._student_adapter)

    # -- saving --------------------------------------------------------------------------------------
    def save(self, out_dir: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write the model (only the trained adapter under LoRA) and the tokenizer; ``state_dict`` is the full
        one of a sharded model (:func:`retain.train.loop.full_state_dict`, gathered by every process)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        given = {"state_dict": state_dict} if state_dict is not None else {}
        if self.is_lora:  # only the trained adapter, never a teacher's
            self.model.save_pretrained(out, safe_serialization=True, selected_adapters=[self.model.active_adapter],
                                       **given)
        else:
            self.model.save_pretrained(out, safe_serialization=True, **given)
        self.tokenizer.save_pretrained(out)
