"""Plain L2 anchoring: every parameter equally important (the ablation of EWC, SI and MAS).

L = L_new + (lambda/2) sum_i (theta_i - theta*_i)^2 with theta* the parameters after the last task; this is
EWC with the Fisher replaced by ones (Kirkpatrick et al. 2017 use it as their "L2" baseline), built on the
same anchor bookkeeping (:mod:`retain.methods.importance`) with no importance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from retain.methods.importance import ImportanceConsolidation
from retain.models.adapter import Adapter


class L2(ImportanceConsolidation):
    """Pull every parameter towards its value after the previous task, with importance 1."""

    name = "l2"

    @dataclass
    class Config:
        lam: float = 1.0

        def problems(self) -> Iterator[tuple[str, str]]:
            if not self.lam >= 0:
                yield "lam", f"must be >= 0, got {self.lam}"

    @property
    def scale(self) -> float:
        return self.config.lam / 2

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        self.consolidate(adapter, None)
