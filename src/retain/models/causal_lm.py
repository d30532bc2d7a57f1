"""The one place that knows Hugging Face causal LMs: loading (embedded or a local folder), optional PEFT LoRA,
prompts through the chat template, target-token logits, sampling, SDFT's teacher, and ``save_pretrained``."""

from __future__ import annotations

import copy
import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from retain.data.prompts import OFFICIAL_TEACHER_TEMPLATE, PAPER_TEACHER_TEMPLATE, teacher_message
from retain.data.skills import Example
from retain.errors import RetainError

EMBEDDED = "embedded"
TEACHER_ADAPTER = "sdft_teacher"  # the PEFT adapter that holds SDFT's teacher under LoRA
TEACHER_KINDS = ("ema", "frozen", "live")


def resolve_model_path(path: str | Path) -> Path:
    """``embedded`` or a local directory holding a causal LM; a clear error for anything else."""
    if str(path) == EMBEDDED:
        from retain.models.tiny.store import embedded_dir
        return embedded_dir()
    p = Path(path)
    if not p.exists():
        raise RetainError("model directory does not exist", file=str(p))
    if not p.is_dir():
        raise RetainError("model path is not a directory", file=str(p))
    if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
        raise RetainError("holds no causal LM (no config.json or adapter_config.json)", file=str(p))
    return p


def default_teacher_template(tokenizer: Any) -> str:
    """The embedded model's own template for it and every model derived from it (recognised by its chat
    template, which they keep), the official code's for every other model (see :mod:`retain.data.prompts`)."""
    from retain.models.tiny.tokenizer import CHAT_TEMPLATE
    return PAPER_TEACHER_TEMPLATE if getattr(tokenizer, "chat_template", None) == CHAT_TEMPLATE \
        else OFFICIAL_TEACHER_TEMPLATE


class CausalLMAdapter:
    """A causal LM and its tokenizer, seen the way methods need them.

    Prompts go through the tokenizer's chat template when it has one (one user message, generation prompt
    added), else the raw text followed by a newline. A completion ends with the EOS token. The teacher prompt
    uses :attr:`teacher_template` unless a template is given.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, source: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
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

    # -- text -> ids ---------------------------------------------------------------------------------
    def prompt_ids(self, message: str) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            out = self.tokenizer.apply_chat_template([{"role": "user", "content": message}],
                                                     add_generation_prompt=True, tokenize=True)
            return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)
        return self.tokenizer(message + "\n", add_special_tokens=True)["input_ids"]

    def student_ids(self, example: Example) -> list[int]:
        return self.prompt_ids(example.prompt)

    def teacher_ids(self, example: Example, template: str | None = None) -> list[int]:
        return self.prompt_ids(teacher_message(example, template or self.teacher_template))

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
        inside :meth:`training_forward` (so DDP synchronises them and mixed precision applies); else the model."""
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
        return self.target_predictions([self.student_ids(e) for e in batch],
                                       [self.completion_ids(e.demonstration) for e in batch])

    # -- generation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, prompts: list[list[int]], *, max_new_tokens: int, do_sample: bool,
                 temperature: float = 1.0, top_p: float = 1.0, num_return_sequences: int = 1) -> list[list[int]]:
        """Completions (ending with EOS when one was produced) for left-padded prompts."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, width - len(p):] = torch.tensor(p)
            attn[b, width - len(p):] = 1
        was_training = self.model.training
        self.model.eval()
        kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                      num_return_sequences=num_return_sequences, pad_token_id=self.pad_id,
                                      eos_token_id=self.eos_id)
        if do_sample:
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = self.model.generate(input_ids=ids.to(self.device), attention_mask=attn.to(self.device), **kwargs)
        self.model.train(was_training)
        completions = []
        for row in out[:, width:].tolist():
            if self.eos_id in row:
                row = row[:row.index(self.eos_id) + 1]
            completions.append(row)
        return completions

    def decode(self, completion: list[int]) -> str:
        return self.tokenizer.decode([t for t in completion if t != self.eos_id], skip_special_tokens=True)

    def answer(self, examples: list[Example], *, with_demonstration: bool = False, max_new_tokens: int = 32,
               batch_size: int = 64, template: str | None = None) -> list[str]:
        """Greedy answers to the examples' prompts (shown with their demonstrations if asked)."""
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
        else:
            self._teacher_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        student = self.trainable_parameters()
        with torch.no_grad():
            for name, t in self.teacher_parameters().items():
                t.copy_(student[name])

    def update_teacher(self, rate: float) -> None:
        """EMA step of an ``ema`` teacher: ``teacher <- (1 - rate) * teacher + rate * student`` (the official
        code's ``ref_model_mixup_alpha``, TRL's ``teacher_update_rate``); a ``frozen`` or ``live`` one stays."""
        if self._teacher_kind != "ema":
            return
        student = self.trainable_parameters()
        with torch.no_grad():
            for name, t in self.teacher_parameters().items():
                t.mul_(1.0 - rate).add_(student[name].detach(), alpha=rate)

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
    def save(self, out_dir: str | Path) -> None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if self.is_lora:  # only the trained adapter, never a teacher's
            self.model.save_pretrained(out, safe_serialization=True, selected_adapters=[self.model.active_adapter])
        else:
            self.model.save_pretrained(out, safe_serialization=True)
        self.tokenizer.save_pretrained(out)


def _lora_base_path(adapter_dir: Path) -> Path:
    base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise RetainError("adapter_config.json names no base model", file=str(adapter_dir / "adapter_config.json"),
                          field="base_model_name_or_path")
    return resolve_model_path(base)


def load_adapter(path: str | Path, *, lora: bool = False, lora_r: int = 8, lora_alpha: int = 16,
                 dtype: torch.dtype = torch.float32) -> CausalLMAdapter:
    """Load ``embedded`` or a local causal LM folder (a full model or a PEFT LoRA adapter folder).

    With ``lora=True`` a fresh LoRA adapter is added on every linear layer and only it is trainable.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # Loading bars from transformers for a model that loads in milliseconds are noise on our progress bars.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    model_dir = resolve_model_path(path)
    is_adapter_dir = (model_dir / "adapter_config.json").exists() and not (model_dir / "config.json").exists()
    base_dir = _lora_base_path(model_dir) if is_adapter_dir else model_dir
    from retain.ledger.tensors import check_complete
    for folder in {model_dir, base_dir}:
        check_complete(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir if (model_dir / "tokenizer_config.json").exists()
                                                  else base_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RetainError(f"cannot load a causal LM ({first})", file=str(model_dir)) from None
    if is_adapter_dir:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, model_dir, is_trainable=lora)
    elif lora:
        from peft import LoraConfig, get_peft_model
        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                            task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
        model.peft_config["default"].base_model_name_or_path = str(base_dir.resolve())
    model.eval()
    return CausalLMAdapter(model, tokenizer, str(path))
