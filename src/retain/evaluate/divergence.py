"""Per-token divergences between teacher and student next-token distributions, and SDFT's reduction.

``alpha`` follows TRL's convention: 0 is forward KL(teacher || student) (what every SDFT result in the paper
used: Shenfeld et al., "Self-Distillation Enables Continual Learning", 2026, per its authors in the official
repository's issue #5; docs/references.md), 1 is reverse KL(student || teacher), and in between the generalized JSD
``alpha * KL(T || M) + (1 - alpha) * KL(S || M)`` with ``M = alpha * T + (1 - alpha) * S``.

The divergence runs over :data:`CHUNK_ROWS` positions at a time, each chunk recomputed in the backward pass
(activation checkpointing), so its float32 softmax intermediates take rows x vocabulary for one chunk instead
of batch x length x vocabulary (a 150k vocabulary over 2k positions is 1.2 GB per intermediate).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

CHUNK_ROWS = 256  # positions per chunk of the divergence: 256 x 150k float32 is 150 MB per intermediate


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def tail_bucket(log_probs: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The top-k log-probabilities at ``index`` (``[..., k]``) plus one bucket holding the mass outside them
    (``[..., k + 1]``, summing to 1), as TRL's ``add_tail_bucket`` does.

    The bucket's log-mass is the logsumexp of the log-probabilities outside the top k, not ``log(1 - P)`` of
    the captured mass ``P``: that difference cancels catastrophically when the top k hold all but a sliver of
    the mass (at logit scale 20 float32 was off by up to 0.5 per token), while a logsumexp over the rest is
    exact at any scale and in the input's precision.
    """
    top = log_probs.gather(-1, index)
    rest = log_probs.scatter(-1, index, float("-inf"))
    return torch.cat([top, torch.logsumexp(rest, dim=-1, keepdim=True)], dim=-1)


def token_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, alpha: float = 0.0,
                     top_k: int | None = None, tail: bool = False, chunk: int | None = CHUNK_ROWS) -> torch.Tensor:
    """Divergence at every position: ``[..., V]`` logits in, ``[...]`` values out.

    With ``top_k``, both distributions are restricted to the student's ``k`` most likely tokens at each
    position (TRL's ``topk_logits``), renormalised there, or with ``tail`` kept as they are with the mass
    outside the top k as one extra bucket (TRL's ``distillation_add_tail``); otherwise the full vocabulary is
    used. Positions go ``chunk`` at a time (None: all at once); every position's value is computed alone, so
    chunking changes no value.
    """
    shape, vocab = student_logits.shape[:-1], student_logits.shape[-1]
    rows = shape.numel()
    if chunk is None or rows <= chunk:
        return _position_divergence(student_logits, teacher_logits, alpha, top_k, tail)
    student_rows, teacher_rows = student_logits.reshape(rows, vocab), teacher_logits.reshape(rows, vocab)
    grad = torch.is_grad_enabled() and (student_logits.requires_grad or teacher_logits.requires_grad)
    parts = []
    for start in range(0, rows, chunk):
        s, t = student_rows[start:start + chunk], teacher_rows[start:start + chunk]
        parts.append(checkpoint(_position_divergence, s, t, alpha, top_k, tail, use_reentrant=False) if grad
                     else _position_divergence(s, t, alpha, top_k, tail))
    return torch.cat(parts).reshape(shape)


def _position_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, alpha: float,
                         top_k: int | None, tail: bool) -> torch.Tensor:
    # float32 at least (bfloat16 softmaxes lose the tail); float64 inputs stay float64
    dtype = torch.promote_types(torch.promote_types(student_logits.dtype, teacher_logits.dtype), torch.float32)
    student_logits = student_logits.to(dtype)
    teacher_logits = teacher_logits.to(dtype)
    if top_k is not None and top_k < student_logits.shape[-1]:
        index = student_logits.detach().topk(top_k, dim=-1).indices
        if tail:
            log_s = tail_bucket(F.log_softmax(student_logits, dim=-1), index)
            log_t = tail_bucket(F.log_softmax(teacher_logits, dim=-1), index)
            return _divergence(log_s, log_t, alpha)
        student_logits = student_logits.gather(-1, index)
        teacher_logits = teacher_logits.gather(-1, index)
    return _divergence(F.log_softmax(student_logits, dim=-1), F.log_softmax(teacher_logits, dim=-1), alpha)


def _divergence(log_s: torch.Tensor, log_t: torch.Tensor, alpha: float) -> torch.Tensor:
    if alpha == 0.0:
        return _kl(log_t, log_s)
    if alpha == 1.0:
        return _kl(log_s, log_t)
    log_m = torch.logsumexp(torch.stack([log_t + math.log(alpha), log_s + math.log(1.0 - alpha)]), dim=0)
    return alpha * _kl(log_t, log_m) + (1.0 - alpha) * _kl(log_s, log_m)


def skip_mask(mask: torch.Tensor, skip: int) -> torch.Tensor:
    """Drop the first ``skip`` real tokens of every row of a ``[B, T]`` completion mask."""
    if skip <= 0:
        return mask
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    return mask & (positions >= skip)


def sequence_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each sequence's unmasked tokens, then over the sequences that have any (SDFT's reduction)."""
    mask = mask.to(values.dtype)
    counts = mask.sum(-1)
    keep = counts > 0
    if not bool(keep.any()):
        return values.sum() * 0.0
    per_sequence = (values * mask).sum(-1)[keep] / counts[keep]
    return per_sequence.mean()
