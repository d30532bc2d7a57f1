"""The GPU check (issue 9, item 8): SFT and SDFT in bfloat16 on a randomly initialised Qwen2 of about 0.5B
parameters, built here from a config (no download), through retain's own run path; prints time per example,
tokens per second and peak memory of each, and writes them as JSON.

    python benchmarks/gpu/check.py [--tiny] [--examples 64] [--batch-size 8] [--out results/gpu_check]

The full size is Qwen2.5-0.5B's shape (24 layers, hidden 896, 14 heads, 2 KV heads, vocabulary 151,936,
tied embeddings: about 494M parameters). ``--tiny`` is a 2-layer, 32-wide Qwen2 that runs on a CPU in
seconds and proves the script works. Token ids come from retain's embedded character tokenizer (its ids are
a subset of the vocabulary), so the LM head and the divergence still cost the full vocabulary. Prompts are
about ``--prompt-chars`` tokens and demonstrations ``--answer-chars`` tokens; SDFT samples up to
``--max-new-tokens`` per prompt (one sample, temperature 1, EMA teacher, no skipped tokens).
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

FULL = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
            num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True)
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=1024, max_position_embeddings=1024, tie_word_embeddings=True)


def build_model(folder: Path, tiny: bool) -> int:
    """A random Qwen2 saved in bfloat16 with the embedded tokenizer; returns its parameter count."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from retain.models.tiny.tokenizer import build_tokenizer

    tok = build_tokenizer()
    config = Qwen2Config(**(TINY if tiny else FULL), bos_token_id=tok.bos_token_id or tok.eos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, dtype="bfloat16")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def make_examples(n: int, prompt_chars: int, answer_chars: int, seed: int = 0) -> list:
    from retain.data.skills import Example

    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz "
    text = lambda k: "".join(rng.choice(letters) for _ in range(k))  # noqa: E731 - local shorthand
    return [Example(prompt=text(prompt_chars), demonstration=text(answer_chars)) for _ in range(n)]


def measure(method: str, model_dir: Path, examples: list, args: argparse.Namespace) -> dict:
    """One method through retain.run.run on a fresh load of the model; only training is timed."""
    from retain.domains import language
    from retain.recipe import Recipe
    from retain.run import run
    from retain.scenario import Scenario, Task
    from retain.seeding import seed_everything

    options = {"sdft": {"skip_tokens": 0, "max_new_tokens": args.max_new_tokens}} if method == "sdft" else None
    recipe = Recipe.for_model(str(model_dir), method, seed=0, options=options, epochs=1, batch_size=args.batch_size,
                              spec={"dtype": "bfloat16", "device": args.device})
    seed_everything(0)
    adapter = language.load_model(recipe)
    cuda = adapter.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    scenario = Scenario("language", "gpu-check", "timing", [Task(method, examples)], language.load_model)
    result = run(scenario, recipe, adapter=adapter, quiet=True)
    if cuda:
        torch.cuda.synchronize()
    seconds = result.train_seconds[0]
    prompt_tokens = sum(len(adapter.student_ids(e)) for e in examples)
    if method == "sdft":
        completion_tokens = result.objective.token_stats()["total"]  # what was sampled and trained on
    else:
        completion_tokens = sum(len(adapter.completion_ids(e.demonstration)) for e in examples)
    row = {"method": method, "examples": len(examples), "seconds": seconds,
           "ms_per_example": 1000 * seconds / len(examples),
           "completion_tokens_per_s": completion_tokens / seconds,
           "tokens_per_s": (prompt_tokens + completion_tokens) / seconds,
           "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
           "dtype": str(next(adapter.model.parameters()).dtype), "device": str(adapter.device)}
    del adapter, result
    if cuda:
        torch.cuda.empty_cache()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny Qwen2 (runs on a CPU in seconds)")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prompt-chars", type=int, default=256)
    parser.add_argument("--answer-chars", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--out", type=Path, default=Path("results/gpu_check"))
    args = parser.parse_args()
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    with tempfile.TemporaryDirectory(prefix="retain-gpu-check-") as tmp:
        start = time.perf_counter()
        params = build_model(Path(tmp), args.tiny)
        print(f"built a random Qwen2 of {params / 1e6:.1f}M parameters in bfloat16 "
              f"({time.perf_counter() - start:.0f}s); card: {card}", flush=True)
        examples = make_examples(args.examples, args.prompt_chars, args.answer_chars)
        rows = [measure(m, Path(tmp), examples, args) for m in ("sft", "sdft")]
    print(f"{'method':<6} {'ms/example':>11} {'tokens/s':>10} {'completion tok/s':>17} {'peak MB':>9}  dtype, device")
    for r in rows:
        peak = f"{r['peak_memory_mb']:.0f}" if r["peak_memory_mb"] is not None else "n/a"
        print(f"{r['method']:<6} {r['ms_per_example']:>11.1f} {r['tokens_per_s']:>10.0f} "
              f"{r['completion_tokens_per_s']:>17.0f} {peak:>9}  {r['dtype']}, {r['device']}")
    ratio = rows[1]["ms_per_example"] / rows[0]["ms_per_example"]
    print(f"SDFT/SFT time per example: {ratio:.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"card": card, "parameters": params, "tiny": args.tiny, "examples": args.examples,
              "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens, "rows": rows,
              "sdft_over_sft": ratio}
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
