"""Builds the embedded base model: a small Llama pretrained on CPU on the generated skill suite.

Seeded and deterministic. The pretraining text (``retain.data.synthetic``) gives it five prior skills asked
plainly and the general ability to answer a query when shown an expert demonstration for that same query, in
any of several surface styles, in its own style. The shipped checkpoint is made by ``retain build-base``
(defaults below); ``--short`` makes a small one for tests.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from retain.data.prompts import PAPER_TEACHER_TEMPLATE
from retain.data.synthetic import held_out_words, pretraining_example
from retain.errors import check
from retain.models.causal_lm import CausalLMAdapter
from retain.models.tiny.store import write_manifest
from retain.models.tiny.tokenizer import build_tokenizer
from retain.seeding import seed_everything


# Full fine-tuning learning rate for the embedded model (``retain learn embedded`` and the demo), from a sweep
# of 5e-5, 1e-4 and 3e-4 on the demo's stream (seed 0) with one value for every method: at 3e-4 both methods
# keep under 20% of the prior skills, at 5e-5 SFT learns almost nothing.
EMBEDDED_FINETUNE_LR = 1e-4


@dataclass
class BuildConfig:
    steps: int = 2000
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 200
    demo_batch_fraction: float = 0.45
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    seed: int = 0

    def validate(self) -> None:
        check(self.steps >= 1, "must be >= 1", field="steps")
        check(self.batch_size >= 1, "must be >= 1", field="batch_size")

    @classmethod
    def for_size(cls, size: str, **overrides: float) -> "BuildConfig":
        """The recipe of one size of ``SIZES``: same skill library, tokenizer, steps and batch; wider and deeper."""
        check(size in SIZES, f"must be one of {', '.join(SIZES)}, got {size!r}", field="size")
        return cls(**{**SIZES[size], **overrides})


# Model sizes for the capacity study (issue 8): S is the shipped 0.87M model; M about 4M and L about 16M
# parameters. Wider networks forget less (Ramasesh et al. 2022; Mirzadeh et al. 2022).
SIZES: dict[str, dict[str, float]] = {
    "S": {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "intermediate_size": 384},
    "M": {"hidden_size": 256, "num_layers": 5, "num_heads": 8, "intermediate_size": 768, "lr": 2e-3},
    "L": {"hidden_size": 512, "num_layers": 5, "num_heads": 8, "intermediate_size": 1536, "lr": 1e-3},
}


def new_model(cfg: BuildConfig, vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                         num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
                         num_key_value_heads=cfg.num_heads, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(config)


def _batch(adapter: CausalLMAdapter, rng: random.Random, size: int, with_demo: bool,
           exclude: set[str]) -> tuple[list[list[int]], list[list[int]]]:
    prompts, completions = [], []
    while len(prompts) < size:
        example, has_demo = pretraining_example(rng, exclude)
        if has_demo != with_demo:
            continue
        prompts.append(adapter.teacher_ids(example, PAPER_TEACHER_TEMPLATE) if has_demo
                       else adapter.student_ids(example))
        completions.append(adapter.completion_ids(example.answer or ""))
    return prompts, completions


def pretrain(out_dir: Path, cfg: BuildConfig, on_step: Callable[[int, int, float], None] | None = None,
             snapshot_every: int = 0, start: str | Path | None = None) -> dict:
    """Pretrain from scratch and save model, tokenizer and manifest to ``out_dir``; returns build facts.

    With ``snapshot_every``, the model so far is also saved to ``out_dir/step-N`` every that many steps, so a
    long build can be inspected while it runs. With ``start`` (``embedded`` or a built model's folder) the
    recipe continues that model instead of a new one (a warm restart of the schedule; its size is the model's).
    """
    cfg.validate()
    seed_everything(cfg.seed)
    if start is None:
        tokenizer = build_tokenizer()
        adapter = CausalLMAdapter(new_model(cfg, len(tokenizer)), tokenizer, "embedded")
    else:
        from retain.models.loading import load_adapter

        adapter = load_adapter(start)
    model = adapter.model
    rng = random.Random(cfg.seed)
    exclude = set(held_out_words())
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    model.train()
    began = time.perf_counter()
    for step in range(cfg.steps):
        prompts, completions = _batch(adapter, rng, cfg.batch_size, rng.random() < cfg.demo_batch_fraction, exclude)
        loss = F.cross_entropy(*adapter.target_predictions(prompts, completions))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if on_step is not None:
            on_step(step + 1, cfg.steps, float(loss.detach()))
        if snapshot_every and (step + 1) % snapshot_every == 0 and step + 1 < cfg.steps:
            adapter.save(out_dir / f"step-{step + 1}")
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.iterdir():
        if stale.is_file():
            stale.unlink()
    adapter.save(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    facts = {"build_config": asdict(cfg), **({"continued_from": str(start)} if start is not None else {}),
             "parameters": n_params, "pretrain_seconds": round(time.perf_counter() - began, 1),
             "torch": torch.__version__}
    write_manifest(out_dir, facts)
    return facts


def describe(facts: dict) -> str:
    return json.dumps(facts, indent=2, sort_keys=True)
