"""What a method may know about a model: the :class:`Adapter` protocol.

Methods (``retain.methods``) never touch model internals; they go through an adapter. Three families implement
it: :class:`retain.models.causal_lm.CausalLMAdapter` (a Hugging Face causal LM, optionally under PEFT LoRA; it
also owns SDFT's teacher), :class:`retain.models.classifier.ClassifierAdapter` (a torch classifier) and
:class:`retain.models.policy.PolicyAdapter` (a discrete-action policy, a classifier over actions).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn


def is_sharded(module: nn.Module) -> bool:
    """Whether FSDP2 shards ``module``'s parameters across processes (it keeps them as DTensors): every forward
    is then a collective that every process must run (scoring, generation, a full state dict), and the model
    cannot be deep-copied."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in module.parameters())


class Adapter(Protocol):
    """The model-family interface every method may rely on (causal LM, classifier, policy)."""

    model: nn.Module

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters training changes (only the adapter's under LoRA), by name."""

    def predictions(self, batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[N, C]`` and integer targets ``[N]`` for every prediction the batch holds.

        A classifier makes one prediction per example; a causal LM one per target token.
        """
