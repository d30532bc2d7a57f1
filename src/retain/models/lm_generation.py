"""Generation with a causal LM: sampled or greedy completions of left-padded prompts, and greedy answers to
examples (what every score reads). The student's model runs; its text side is :class:`retain.models.lm_text.LMText`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from retain.data.skills import Example
from retain.models.adapter import is_sharded
from retain.models.lm_text import LMText

ANSWER_TOKENS = 32  # greedy answers' length when neither the caller nor max_new_tokens says


@torch.no_grad()
def generate(model: nn.Module, text: LMText, prompts: list[list[int]], *, max_new_tokens: int, do_sample: bool,
             temperature: float = 1.0, top_p: float = 1.0, num_return_sequences: int = 1) -> list[list[int]]:
    """Completions (ending with the EOS id that stopped them, when one did) for left-padded prompts; at most
    ``max_new_tokens`` and never past the model's positions."""
    width = max(len(p) for p in prompts)
    if text.positions is not None:
        max_new_tokens = max(1, min(max_new_tokens, text.positions - width))
    ids = torch.full((len(prompts), width), text.pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), width), dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, width - len(p):] = torch.tensor(p)
        attn[b, width - len(p):] = 1
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    kwargs: dict[str, Any] = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                                  num_return_sequences=num_return_sequences, pad_token_id=text.pad_id,
                                  eos_token_id=text.eos_ids)
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if hasattr(model, "peft_config") and is_sharded(model):
        # PEFT's generate runs the base model, never the root FSDP2 wrapped (the PeftModel), whose forward is
        # where FSDP2 sets itself up and gathers the root's own parameters (kept until the next backward):
        # one token through the root first does both.
        model(input_ids=ids[:, -1:].to(device))
    out = model.generate(input_ids=ids.to(device), attention_mask=attn.to(device), **kwargs)
    model.train(was_training)
    completions = []
    for row in out[:, width:].tolist():
        stop = next((i for i, t in enumerate(row) if t in text.eos_ids), None)
        completions.append(row if stop is None else row[:stop + 1])
    return completions


def answer(model: nn.Module, text: LMText, examples: list[Example], *, with_demonstration: bool = False,
           max_new_tokens: int | None = None, batch_size: int = 64, template: str | None = None) -> list[str]:
    """Greedy answers to the examples' prompts (shown with their demonstrations if asked), of at most
    ``max_new_tokens``, else ``text.max_new_tokens``, else :data:`ANSWER_TOKENS` tokens."""
    max_new_tokens = max_new_tokens or text.max_new_tokens or ANSWER_TOKENS
    answers = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        prompts = [text.teacher_ids(e, template) if with_demonstration else text.student_ids(e) for e in chunk]
        answers += [text.decode(c) for c in generate(model, text, prompts, max_new_tokens=max_new_tokens,
                                                     do_sample=False)]
    return answers
