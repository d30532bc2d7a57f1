"""Importance-weighted anchoring, the bookkeeping EWC, SI and MAS share (and L2, with every importance 1).

Each of them ends a task with an anchor theta* (the parameters then) and an importance Omega per parameter,
and adds ``scale * sum_i Omega_i (theta_i - theta*_i)^2`` to the loss (Kirkpatrick et al. 2017; Zenke et al.
2017; Aljundi et al. 2018; the formulas in docs/references.md). They differ in how Omega is estimated and in how tasks
accumulate:

- ``separate``: one (anchor, importance) pair per task, one penalty term each (EWC as Kirkpatrick et al.);
- ``online``: one pair; the anchor is the latest parameters and Omega <- gamma * Omega + Omega_new (online EWC,
  Schwarz et al. 2018; SI and MAS sum over tasks, which is gamma = 1).

Memory: an anchor and an importance per task kept, 2 x (trainable parameters) floats each; over LoRA
parameters only, that is small. The penalty is elementwise, so under FSDP2 each process computes its shards'
part and the scalar is reduced (:func:`quadratic_penalty`).
"""

from __future__ import annotations

from typing import Any

import torch

from retain.methods.base import Consolidation, tensor_bytes
from retain.models.adapter import Adapter, is_sharded


def snapshot(adapter: Adapter) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable parameters: an anchor theta*."""
    return {name: p.detach().clone() for name, p in adapter.trainable_parameters().items()}


def quadratic_penalty(adapter: Adapter, anchor: dict[str, torch.Tensor],
                      importance: dict[str, torch.Tensor] | None, scale: float) -> torch.Tensor:
    """scale * sum_i importance_i (theta_i - anchor_i)^2 over the adapter's trainable parameters (importance 1
    everywhere when ``importance`` is None)."""
    from torch.distributed.tensor import DTensor

    params = adapter.trainable_parameters()
    terms = []
    for name, p in params.items():
        local = p.to_local() if isinstance(p, DTensor) else p
        diff = (local - _local(anchor[name], p)) ** 2
        if importance is not None:
            diff = _local(importance[name], p) * diff
        terms.append(diff.sum())
    total = scale * torch.stack(terms).sum()
    if is_sharded(adapter.model):
        # FSDP2: each process summed its own shards. The value is the sum over processes; the gradient stays
        # this process's own, which is the penalty's whole gradient on its shards (FSDP adds it to theirs).
        whole = total.detach().clone()
        torch.distributed.all_reduce(whole)
        total = total + (whole - total.detach())
    return total


def _local(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``t`` on ``p``'s device and dtype; when FSDP2 shards ``p`` (a DTensor), this process's part of ``t``, cut
    as ``p`` is: ``t`` taken before the model was sharded is whole on every process (no communication)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    t = t.to(p.device, p.dtype)
    if isinstance(p, DTensor):
        t = t if isinstance(t, DTensor) else distribute_tensor(t, p.device_mesh, p.placements, src_data_rank=None)
        return t.to_local()
    return t


class ImportanceConsolidation(Consolidation):
    """Holds the (anchor, importance) pairs, accumulates them, and makes the penalty; subclasses estimate.

    A subclass sets :attr:`scale` (the penalty's coefficient), :attr:`online` and :attr:`decay` (gamma), and
    calls :meth:`consolidate` from its ``after_task`` with the new task's importance.
    """

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.tasks: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]] = []
        self.learned = 0  # tasks consolidated so far; seeds each task's importance estimate

    @property
    def scale(self) -> float:
        raise NotImplementedError

    @property
    def online(self) -> bool:
        return True

    @property
    def decay(self) -> float:
        return 1.0

    @property
    def anchor(self) -> dict[str, torch.Tensor] | None:
        """The latest anchor (None before the first task)."""
        return self.tasks[-1][0] if self.tasks else None

    @property
    def importance(self) -> dict[str, torch.Tensor] | None:
        """The latest importance (for ``online`` accumulation, the accumulated one)."""
        return self.tasks[-1][1] if self.tasks else None

    def consolidate(self, adapter: Adapter, importance: dict[str, torch.Tensor] | None) -> None:
        """Anchor at the current parameters with ``importance`` for the task just learned."""
        anchor = snapshot(adapter)
        self.learned += 1
        if self.online and self.tasks:
            previous = self.tasks[0][1]
            if previous is not None and importance is not None:
                importance = {name: self.decay * previous[name] + imp for name, imp in importance.items()}
            self.tasks = [(anchor, importance)]
        else:
            self.tasks.append((anchor, importance))

    def penalty(self, adapter: Adapter) -> torch.Tensor | None:
        if not self.tasks or self.scale == 0:
            return None
        terms = [quadratic_penalty(adapter, anchor, importance, self.scale) for anchor, importance in self.tasks]
        return torch.stack(terms).sum()

    def memory_bytes(self) -> int:
        return sum(tensor_bytes(anchor) + (tensor_bytes(imp) if imp is not None else 0) for anchor, imp in self.tasks)

    # -- state kept between runs ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        tensors = {}
        for t, (anchor, importance) in enumerate(self.tasks):
            for name, value in anchor.items():
                tensors[f"{t}.anchor.{name}"] = value.detach().contiguous()
            for name, value in (importance or {}).items():
                tensors[f"{t}.importance.{name}"] = value.detach().contiguous()
        return tensors

    def extra_state(self) -> dict[str, Any]:
        return {"method": self.name, "tasks": len(self.tasks), "learned": self.learned,
                "weighted": [imp is not None for _, imp in self.tasks]}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        if extra.get("method") != self.name:
            raise ValueError(f"state of {extra.get('method')!r} given to {self.name}")
        if self.online and extra["tasks"] > 1:
            raise ValueError(f"{extra['tasks']} separate tasks of state given to an online {self.name}")
        tasks = []
        for t, weighted in enumerate(extra["weighted"]):
            anchor = {key.split(".", 2)[2]: v.clone() for key, v in tensors.items() if key.startswith(f"{t}.anchor.")}
            importance = {key.split(".", 2)[2]: v.clone() for key, v in tensors.items()
                          if key.startswith(f"{t}.importance.")} if weighted else None
            tasks.append((anchor, importance))
        self.tasks = tasks
        self.learned = int(extra["learned"])
