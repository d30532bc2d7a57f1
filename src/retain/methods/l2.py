"""Plain L2 anchoring: every parameter equally important (the ablation of EWC, SI and MAS).

L = L_new + (lambda/2) sum_i (theta_i - theta*_i)^2 with theta* the parameters after the last task; this is
EWC with the Fisher replaced by ones (Kirkpatrick et al. 2017 use it as their "L2" baseline). The helpers
:func:`snapshot` and :func:`quadratic_penalty` are the anchor machinery that EWC, SI and MAS share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from retain.errors import check
from retain.methods.base import Adapter, Consolidation, tensor_bytes


def snapshot(adapter: Adapter) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable parameters: an anchor theta*."""
    return {name: p.detach().clone() for name, p in adapter.trainable_parameters().items()}


def quadratic_penalty(adapter: Adapter, anchor: dict[str, torch.Tensor],
                      importance: dict[str, torch.Tensor] | None, scale: float) -> torch.Tensor:
    """scale * sum_i importance_i (theta_i - anchor_i)^2 over the adapter's trainable parameters.

    Elementwise, so under FSDP/ZeRO each shard can compute its part and the scalar be reduced.
    """
    terms = []
    for name, p in adapter.trainable_parameters().items():
        diff = (p - anchor[name].to(p.device, p.dtype)) ** 2
        if importance is not None:
            diff = importance[name].to(p.device, p.dtype) * diff
        terms.append(diff.sum())
    return scale * torch.stack(terms).sum()


class L2(Consolidation):
    """Pull every parameter towards its value after the previous task, with importance 1."""

    name = "l2"

    @dataclass
    class Config:
        lam: float = 1.0

        def validate(self) -> None:
            check(self.lam >= 0, f"must be >= 0, got {self.lam}", field="l2.lam")

    def __init__(self, config: "L2.Config | None" = None) -> None:
        self.config = config or L2.Config()
        self.config.validate()
        self.anchor: dict[str, torch.Tensor] | None = None

    def penalty(self, adapter: Adapter) -> torch.Tensor | None:
        if self.anchor is None or self.config.lam == 0:
            return None
        return quadratic_penalty(adapter, self.anchor, None, self.config.lam / 2)

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        self.anchor = snapshot(adapter)

    def memory_bytes(self) -> int:
        return tensor_bytes(self.anchor) if self.anchor is not None else 0
