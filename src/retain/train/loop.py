"""The training loop for one task: plain code through Accelerate, seeded, with a progress bar.

``accelerator.prepare`` and ``accelerator.backward`` make ``accelerate launch`` (DDP, FSDP, DeepSpeed) work
without new code. ``batch_size`` is the global batch: each process trains on its own slice of every batch
(split further into ``grad_accum`` micro-batches), the loss comes from the prepared module so the processes'
gradients are averaged, and every process takes the same optimiser steps.
"""

from __future__ import annotations

import functools
import math
import os
import random
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import accelerate
import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

from retain.errors import RetainError, check
from retain.methods.base import Consolidation, Objective
from retain.models.adapter import Adapter, is_sharded

MIXED_PRECISION = ("no", "bf16", "fp16")
# Accelerate's own setting: `accelerate launch` writes its config's (or its --mixed_precision flag's) here.
MIXED_PRECISION_ENV = "ACCELERATE_MIXED_PRECISION"


def mixed_precision_or_env(asked: str | None) -> str:
    """``asked`` when given, else Accelerate's setting (:data:`MIXED_PRECISION_ENV`, what ``accelerate launch``
    sets from its config), else ``no``: the value a run records and hands its Accelerator."""
    if asked is not None:
        return asked
    return os.environ.get(MIXED_PRECISION_ENV, "no").strip().lower() or "no"


@dataclass
class TrainConfig:
    """Optimisation knobs of one task. Defaults follow SDFT's recipe (Shenfeld et al. 2026; docs/references.md)
    at small scale."""

    epochs: int = 2
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    seed: int = 0
    grad_accum: int = 1
    gradient_checkpointing: bool = False
    mixed_precision: str = "no"

    def validate(self) -> None:
        check(self.epochs >= 1, f"must be >= 1, got {self.epochs}", field="epochs")
        check(self.batch_size >= 1, f"must be >= 1, got {self.batch_size}", field="batch_size")
        check(self.lr > 0 and math.isfinite(self.lr), f"must be a positive number, got {self.lr}", field="lr")
        # AdamW moves every weight by about lr each step: above 1 no model survives a step (1e30 gives weights of
        # 1e30 whose outputs are still finite, so the check after training would not see it).
        check(self.lr <= 1, f"must be at most 1 (AdamW moves every weight by about lr per step), got {self.lr:g}",
              field="lr")
        check(self.weight_decay >= 0, f"must be >= 0, got {self.weight_decay}", field="weight_decay")
        check(self.grad_clip >= 0, f"must be >= 0, got {self.grad_clip}", field="grad_clip")
        check(self.schedule in ("cosine", "constant"), f"must be cosine or constant, got {self.schedule!r}",
              field="schedule")
        check(isinstance(self.grad_accum, int) and self.grad_accum >= 1, f"must be >= 1, got {self.grad_accum}",
              field="grad_accum")
        check(isinstance(self.gradient_checkpointing, bool), f"must be true or false, got "
              f"{self.gradient_checkpointing!r}", field="gradient_checkpointing")
        check(self.mixed_precision in MIXED_PRECISION, f"must be one of {', '.join(MIXED_PRECISION)}, got "
              f"{self.mixed_precision!r}", field="mixed_precision")


@dataclass
class TaskStats:
    steps: int
    seconds: float
    losses: list[float]


def _lr_lambda(cfg: TrainConfig, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def process_state(device: str = "auto") -> PartialState:
    """This process's place in a launch (rank, number of processes, main or not), set up on first use.

    Accelerate fixes the process group's kind when the state is first made: only a state made for the CPU
    joins a ``torchrun``/``accelerate launch`` group over gloo, so it is made for the CPU when the run asks
    for the CPU or the machine has no CUDA or MPS device (and for that device otherwise). Every caller
    goes through here so the first one cannot get it wrong.
    """
    accelerated = torch.cuda.is_available() or torch.backends.mps.is_available()
    return PartialState(cpu=device == "cpu" or not accelerated)


def make_accelerator(cpu: bool, mixed_precision: str = "no") -> Accelerator:
    """An Accelerator on the CPU or on the default accelerator (CUDA, MPS), with ``mixed_precision``.

    Accelerate keeps one process-wide state and refuses a second Accelerator with other settings; a run in
    one process (a test session, a benchmark comparing precisions) may ask for several, so a refused one
    resets that state (never the process group, which ``accelerate launch`` set up) and is built again.
    """
    process_state("cpu" if cpu else "auto")
    try:
        accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision)
    except ValueError:
        AcceleratorState._reset_state(reset_partial_state=False)
        accelerator = Accelerator(cpu=cpu, mixed_precision=mixed_precision)
    if (os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and accelerator.num_processes > 1
            and accelerator.distributed_type != DistributedType.FSDP and accelerator.is_main_process):
        _fsdp_runs_as(accelerator.distributed_type.value)
    return accelerator


@functools.cache  # once a process: a run makes an Accelerator per task
def _fsdp_runs_as(kind: str) -> None:
    """Accelerate only shards on GPU-like devices: an FSDP config on CPU processes quietly becomes DDP."""
    warnings.warn(f"the FSDP config runs as DDP on these {kind} processes (Accelerate {accelerate.__version__} "
                  "shards only on GPUs): each holds the whole model", stacklevel=3)


def full_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The whole weights of a model sharded across processes, on the main process (``{}`` elsewhere); every
    process must call it, as it gathers from all of them. ``None`` for a model each process holds whole."""
    if not is_sharded(module):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def _local_slice(batch: list[Any], rank: int, world: int) -> list[Any]:
    """This process's share of a global batch; a batch smaller than the world (an epoch's last one) gives
    each process one example so that every process takes part in the gradient average."""
    return batch[rank::world] or [batch[rank % len(batch)]]


def _micro_batches(batch: list[Any], n: int) -> list[list[Any]]:
    """``batch`` in at most ``n`` contiguous, near-equal, non-empty parts."""
    n = min(n, len(batch))
    bounds = [round(i * len(batch) / n) for i in range(n + 1)]
    return [batch[bounds[i]:bounds[i + 1]] for i in range(n)]


def _check_finite(model: torch.nn.Module, adapter: Adapter, batch: list[Any], losses: list[float],
                  accelerator: Accelerator, cfg: TrainConfig, step: int) -> None:
    """Refuse a model that training overflowed, in one line and before anything is saved: a weight that is not
    finite, or logits on the last training batch that are not (a step of 1e30 leaves finite weights of 1e30
    whose outputs are not), or a step's loss that was not. Each process checks its own shards and slice; the
    verdict is summed over them."""
    bad = []
    for name, param in model.named_parameters():
        local = param.to_local() if hasattr(param, "to_local") else param
        if param.requires_grad and not bool(torch.isfinite(local.detach()).all()):
            bad.append(name)
    outputs = False
    # a forward through an FSDP2 root leaves its parameters gathered (the root does not reshard after forward),
    # which the plugins' after_task would then meet as plain tensors: sharded models are checked by their
    # weights and losses only
    if batch and not is_sharded(model):
        try:
            with torch.no_grad():
                logits, _ = adapter.predictions(batch)
            outputs = not bool(torch.isfinite(logits).all())
        except NotImplementedError:
            pass
    outputs = outputs or not all(math.isfinite(loss) for loss in losses)
    flag = torch.tensor([float(len(bad) + outputs)], device=accelerator.device)
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(flag, reduction="sum")
    if float(flag.item()) > 0:
        what = (f"{len(bad)} weight tensors (e.g. {bad[0]}) not finite" if bad else
                "the model's outputs (or a step's loss) on its training data not finite" if outputs else "a process's weights not finite")
        raise RetainError(f"training left {what} after {step} steps (the learning rate {cfg.lr:g} is too large for "
                          "this model); nothing was saved", field="lr")


def train_task(adapter: Adapter, objective: Objective, plugins: list[Consolidation], examples: list[Any],
               cfg: TrainConfig, *, accelerator: Accelerator | None = None,
               on_step: Callable[[int, int, float], None] | None = None) -> TaskStats:
    """Train ``adapter`` on one task's ``examples`` with ``objective`` plus every plugin's hooks.

    The Accelerator (default: on the device the model is on, with ``cfg.mixed_precision``) prepares the model
    and the optimiser; forwards that carry gradients run the prepared module (Accelerate's contract: only
    then does DDP average the processes' gradients). Each step's loss is the mean over the global batch:
    ``grad_accum`` micro-batches are weighted by their share of this process's slice, gradients synchronise
    once, after the last. ``on_step(step, total, loss)`` is called after each optimiser step
    (:func:`retain.run.run` draws progress bars with it).
    """
    cfg.validate()
    if accelerator is None:
        device = next(adapter.model.parameters()).device
        accelerator = make_accelerator(device.type == "cpu", cfg.mixed_precision)
    train_set = list(examples)
    for plugin in plugins:
        train_set = plugin.training_set(train_set)
    check(len(train_set) > 0, "no training examples", field="examples")
    rng = random.Random(cfg.seed)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs

    if cfg.gradient_checkpointing:
        if not hasattr(adapter.model, "activation_checkpointing_enable"):
            raise RetainError("this model does not support gradient checkpointing", field="gradient_checkpointing")
        # non-reentrant checkpointing needs no input gradients, so it works under LoRA's frozen embeddings
        adapter.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    optimizer = torch.optim.AdamW(list(adapter.trainable_parameters().values()), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay)
    schedule = _lr_lambda(cfg, total)
    # a plugin may scale the schedule's rate as it goes (``drift`` lowers it when the prior skills move)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: schedule(step) * math.prod(p.lr_factor() for p in plugins))
    needy = [p.name for p in plugins if p.per_prediction_gradients]
    if needy and accelerator.distributed_type == DistributedType.FSDP:
        # a sharded parameter is not in the graph (FSDP gathers a whole copy for each forward): no gradient of its own
        raise RetainError(f"{'+'.join(needy)} estimates importance from per-prediction gradients, which FSDP's "
                          "sharded parameters do not give; under FSDP use l2, merge, replay or rehearsal, or train "
                          "with DDP", field="method")
    # One call: FSDP2 and DeepSpeed replace the parameters when they wrap the model and must see both.
    model, optimizer = accelerator.prepare(adapter.model, optimizer)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()

    objective.before_task(adapter)
    for plugin in plugins:
        plugin.before_task(adapter)

    route = getattr(adapter, "training_forward", None)  # adapters that can run their forwards through `model`
    losses: list[float] = []
    start = time.perf_counter()
    step = 0
    local: list[Any] = []
    with route(model) if route is not None else nullcontext():
        for _ in range(cfg.epochs):
            order = list(range(len(train_set)))
            rng.shuffle(order)
            for b in range(steps_per_epoch):
                batch = [train_set[i] for i in order[b * cfg.batch_size:(b + 1) * cfg.batch_size]]
                for plugin in plugins:
                    batch = plugin.mix(batch, rng)
                drawn = [plugin.draw(batch, rng) for plugin in plugins]
                local = _local_slice(batch, accelerator.process_index, accelerator.num_processes)
                parts = _micro_batches(local, cfg.grad_accum)
                optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for i, part in enumerate(parts):
                    last = i == len(parts) - 1
                    with nullcontext() if last else accelerator.no_sync(model):
                        loss = objective.loss(adapter, part) * (len(part) / len(local))
                        if last:  # penalties and the drawn examples' terms: counted once per step
                            for plugin, extra in zip(plugins, drawn):
                                for term in (plugin.penalty(adapter),
                                             plugin.drawn_loss(adapter, extra) if extra else None):
                                    if term is not None:
                                        loss = loss + term
                        accelerator.backward(loss)
                    step_loss += float(loss.detach())
                for plugin in plugins:
                    plugin.after_backward(adapter)
                if cfg.grad_clip > 0:
                    accelerator.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                objective.after_step(adapter)
                for plugin in plugins:
                    plugin.after_step(adapter)
                step += 1
                losses.append(step_loss)
                if on_step is not None:
                    on_step(step, total, losses[-1])
        _check_finite(model, adapter, local, losses, accelerator, cfg, step)
    model.eval()
    if cfg.gradient_checkpointing:
        adapter.model.activation_checkpointing_disable()
    objective.after_task(adapter)
    for plugin in sorted(plugins, key=lambda p: not p.first_after_task):
        plugin.after_task(adapter, list(examples))
    return TaskStats(steps=step, seconds=time.perf_counter() - start, losses=losses)
