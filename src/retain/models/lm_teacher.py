"""SDFT's teacher for a causal LM (Shenfeld et al. 2026; TRL's ``SDFTTrainer._setup_teacher_model``): one small
object per teacher kind, which :meth:`retain.models.causal_lm.CausalLMAdapter.teacher_view` returns.

- :class:`LiveTeacher` is the student itself, run in eval mode; it holds nothing.
- :class:`FrozenTeacher` is the student as it was at the start of the task.
- :class:`EmaTeacher` starts the same and follows the student: ``teacher <- (1 - rate) * teacher + rate *
  student`` after each step (the official code's ``ref_model_mixup_alpha``, TRL's ``teacher_update_rate``).

The frozen and EMA teachers keep their weights in a snapshot: under LoRA a second PEFT adapter copied from the
active one (:class:`AdapterSnapshot`: the base weights are never duplicated, as TRL's
``PEFTAdapterEMACallback``); in full fine-tuning a frozen copy of the model (:class:`ModelSnapshot`; for a
model FSDP2 shards, an unsharded copy of the gathered weights). Trainable parameters outside the LoRA adapter,
if any, are shared with the student. A teacher runs its forwards through :meth:`Teacher.completion_logits`:
which model runs is the teacher's, never a switch on the student.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from retain.models.adapter import is_sharded

TEACHER_ADAPTER = "sdft_teacher"  # the PEFT adapter that holds SDFT's teacher under LoRA
TEACHER_KINDS = ("ema", "frozen", "live")
# Logits predicting each completion token, through a given module (the adapter's completion_logits).
Forward = Callable[[nn.Module, list[list[int]], list[list[int]]], tuple[torch.Tensor, torch.Tensor]]


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a DTensor shard (gathered from every process), or ``t`` itself."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def full_copy(model: nn.Module) -> nn.Module:
    """An unsharded copy of a model FSDP2 shards (which cannot be deep-copied): the same class, built from its
    config, holding the full weights every process gathers (each then keeps a whole copy)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import FSDPModule

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    cls = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))  # FSDP2's subclass's base
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[]):  # its random initialisation must not move the sampling's seed
        teacher = cls(model.config).to(device=device, dtype=next(iter(full.values())).dtype)
    teacher.load_state_dict(full)
    return teacher


class ModelSnapshot:
    """Full fine-tuning: the teacher's own frozen copy of the model."""

    def __init__(self, model: nn.Module) -> None:
        self.module: nn.Module = (full_copy(model) if is_sharded(model) else copy.deepcopy(model)).eval() \
            .requires_grad_(False)
        self.filled = is_sharded(model)  # a gathered copy already holds the student's weights

    @contextmanager
    def running(self) -> Iterator[nn.Module]:
        yield self.module

    def parameters(self, student: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
        copies = dict(self.module.named_parameters())
        return {name: copies[name] for name in student}

    def nbytes(self, student: dict[str, nn.Parameter]) -> int:
        return sum(t.numel() * t.element_size() for t in self.module.parameters())

    def release(self) -> None:
        del self.module


class AdapterSnapshot:
    """LoRA: a second PEFT adapter (:data:`TEACHER_ADAPTER`) copied from the active one; the student's adapter
    stays the active (trained) one except while the teacher runs."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.student_adapter = model.active_adapter
        model.add_adapter(TEACHER_ADAPTER, copy.deepcopy(model.peft_config[self.student_adapter]))
        model.set_adapter(self.student_adapter)  # the teacher's adapter does not train
        self.filled = False

    @contextmanager
    def running(self) -> Iterator[nn.Module]:
        self.model.set_adapter(TEACHER_ADAPTER)
        try:
            yield self.model
        finally:
            self.model.set_adapter(self.student_adapter)

    def parameters(self, student: dict[str, nn.Parameter]) -> dict[str, torch.Tensor]:
        tag = f".{self.student_adapter}."
        params = dict(self.model.named_parameters())
        return {name: params[name.replace(tag, f".{TEACHER_ADAPTER}.")] for name in student if tag in name}

    def nbytes(self, student: dict[str, nn.Parameter]) -> int:
        return sum(t.numel() * t.element_size() for t in self.parameters(student).values())

    def release(self) -> None:
        if TEACHER_ADAPTER in self.model.peft_config:
            self.model.delete_adapter(TEACHER_ADAPTER)
            self.model.set_adapter(self.student_adapter)


class Teacher:
    """The model SDFT distils from. :meth:`completion_logits` runs it (the caller holds it in eval mode and
    without gradients: :meth:`retain.models.causal_lm.CausalLMAdapter.teacher_view`)."""

    kind = ""

    def __init__(self, model: nn.Module, forward: Forward, trainable: Callable[[], dict[str, nn.Parameter]]):
        self.model = model
        self.forward = forward
        self.trainable = trainable

    def completion_logits(self, prompts: list[list[int]],
                          completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward(self.model, prompts, completions)

    def parameters(self) -> dict[str, torch.Tensor]:
        """The teacher's copy of each trainable parameter, by the student's parameter name (``{}`` for live)."""
        return {}

    def nbytes(self) -> int:
        """Bytes the teacher holds of its own: the adapter copy, the full model copy, or nothing."""
        return 0

    def update(self, rate: float) -> None:
        """An EMA step (only :class:`EmaTeacher` moves)."""

    def release(self) -> None:
        """Drop the snapshot, so that a saved model holds no trace of it."""


class LiveTeacher(Teacher):
    """The student itself."""

    kind = "live"


class FrozenTeacher(Teacher):
    """The student as it was when the teacher started (the start of the task)."""

    kind = "frozen"

    def __init__(self, model: nn.Module, forward: Forward, trainable: Callable[[], dict[str, nn.Parameter]]):
        super().__init__(model, forward, trainable)
        self.snapshot: ModelSnapshot | AdapterSnapshot = \
            AdapterSnapshot(model) if hasattr(model, "peft_config") else ModelSnapshot(model)
        if not self.snapshot.filled:
            student = trainable()
            with torch.no_grad():
                for name, t in self.parameters().items():
                    t.copy_(_full(student[name]))  # a LoRA teacher's copy is whole under FSDP2

    def completion_logits(self, prompts: list[list[int]],
                          completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        with self.snapshot.running() as module:
            return self.forward(module, prompts, completions)

    def parameters(self) -> dict[str, torch.Tensor]:
        return self.snapshot.parameters(self.trainable())

    def nbytes(self) -> int:
        return self.snapshot.nbytes(self.trainable())

    def release(self) -> None:
        self.snapshot.release()


class EmaTeacher(FrozenTeacher):
    """Starts as the student and follows it by :meth:`update` after each step."""

    kind = "ema"

    def update(self, rate: float) -> None:
        student = self.trainable()
        with torch.no_grad():
            for name, t in self.parameters().items():
                t.mul_(1.0 - rate).add_(_full(student[name].detach()), alpha=rate)


TEACHERS: dict[str, type[Teacher]] = {"ema": EmaTeacher, "frozen": FrozenTeacher, "live": LiveTeacher}


def start(kind: str, model: nn.Module, forward: Forward, trainable: Callable[[], dict[str, nn.Parameter]]) -> Teacher:
    """A teacher of ``kind`` over ``model`` (a frozen or EMA one snapshots the trainable weights now)."""
    if kind not in TEACHERS:
        raise ValueError(f"teacher kind must be one of {TEACHER_KINDS}, got {kind!r}")
    return TEACHERS[kind](model, forward, trainable)
