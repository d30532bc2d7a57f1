"""Saving a causal LM as a ``save_pretrained`` folder: the model (only the trained adapter under LoRA, never an
SDFT teacher's) and its tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def save(model: nn.Module, tokenizer: Any, out_dir: str | Path,
         state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """Write ``model`` and ``tokenizer`` to ``out_dir``; ``state_dict`` is the full one of a sharded model
    (:func:`retain.train.loop.full_state_dict`, gathered by every process)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    given = {"state_dict": state_dict} if state_dict is not None else {}
    if hasattr(model, "peft_config"):  # only the trained adapter, never a teacher's
        model.save_pretrained(out, safe_serialization=True, selected_adapters=[model.active_adapter], **given)
    else:
        model.save_pretrained(out, safe_serialization=True, **given)
    tokenizer.save_pretrained(out)
