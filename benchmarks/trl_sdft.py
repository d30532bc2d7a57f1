"""retain's SDFT against TRL's ``SDFTTrainer``, side by side in one run: ``python benchmarks/trl_sdft.py
[--model embedded|DIR] [--examples 64] [--batch-size 16] [--max-new-tokens 24] [--out results/trl_sdft]``.

Needs the optional extra ``retain[trl]`` (TRL 1.16, which runs on the pinned transformers and torch).

Both trainers get the same model, the same prompts (one user message through the tokenizer's chat template),
the same demonstrations as the teacher's privileged context in the same teacher template (TRL's default
``{prompt}\\n\\n{privileged_context}``), the same batch, one pass, one sample per prompt at temperature 1, the
same maximum completion length, the same divergence (forward KL over the full vocabulary: TRL's
``distillation_mode="full_logits"``, ``distillation_alpha=0``; retain's ``alpha=0``, no ``top_k``), no skipped
tokens, a frozen teacher (TRL's ``base``, retain's ``frozen``) and full fine-tuning. The rows run in one fresh
process: a warm-up round, then ``--repeats`` rounds over every row in turn (each training from a fresh model),
and the median is reported. Time per example is the training loop's wall time (TRL: ``train_runtime``; retain: the task's
training seconds) over the examples; rollout length is the mean completion tokens sampled, since a trainer
that samples shorter completions does less work.

Levers (rows of retain only): generation without early stop (every rollout runs to ``--max-new-tokens``, which
is what early stop saves) and the EMA teacher (the paper's default, one parameter update per step on top of
the frozen teacher), and retain's deterministic kernels turned off (``seed_everything`` turns them on so CPU
runs repeat bit for bit; TRL does not). SFT on the same examples and batch gives the SDFT/SFT ratio.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import statistics
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

TEMPLATE = "{prompt}\n\n{demonstration}"  # TRL's teacher_prompt_template, in retain's field names
LR = 1e-5


@dataclass
class Setup:
    model: str = "embedded"
    examples: int = 64
    batch_size: int = 16
    max_new_tokens: int = 24
    data: str | None = None


def examples(setup: Setup) -> list:
    from retain.bench.speed import SpeedSetup, examples_for

    return examples_for(SpeedSetup(model=setup.model, data=setup.data, examples=setup.examples))


def model_dir(setup: Setup) -> str:
    from retain.models.loading import resolve_model_path

    return str(resolve_model_path(setup.model))


def run_trl(setup: Setup) -> dict[str, Any]:
    """TRL's SDFTTrainer on the setup: one pass, timing from its own ``train_runtime``."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.sdft import SDFTConfig, SDFTTrainer

    torch.manual_seed(0)
    rows = examples(setup)
    path = model_dir(setup)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": e.prompt}],
                                  "privileged_context": e.demonstration} for e in rows])
    args = SDFTConfig(output_dir=os.path.join(os.environ.get("TMPDIR", "/tmp"), "retain-trl-sdft"),
                      per_device_train_batch_size=setup.batch_size, gradient_accumulation_steps=1,
                      num_generations=1, max_completion_length=setup.max_new_tokens, max_prompt_length=None,
                      num_train_epochs=1, learning_rate=LR, temperature=1.0, top_p=1.0, top_k=0,
                      distillation_mode="full_logits", distillation_alpha=0.0, distillation_is_clip=None,
                      num_loss_tokens_to_skip=0, teacher_model_kind="base", disable_dropout=True,
                      teacher_prompt_template="{prompt}\n\n{privileged_context}", report_to="none",
                      save_strategy="no", logging_steps=1, use_cpu=not torch.cuda.is_available(), seed=0,
                      dataloader_num_workers=0, max_grad_norm=1.0, lr_scheduler_type="cosine")
    trainer = SDFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    output = trainer.train()
    lengths = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return {"seconds": output.metrics["train_runtime"],
            "rollout_tokens": sum(lengths) / len(lengths) if lengths else float("nan")}


def run_retain(setup: Setup, method: str, *, teacher: str = "frozen", early_stop: bool = True,
               deterministic: bool = True) -> dict[str, Any]:
    """retain's SFT or SDFT on the setup through :func:`retain.run.run`, as ``retain learn`` trains.

    ``deterministic=False`` turns off the deterministic kernels that :func:`retain.seeding.seed_everything`
    turns on for bit-for-bit repeatable runs (TRL does not use them)."""
    import torch

    import retain.run as run_module
    from retain.domains import language
    from retain.recipe import Recipe
    from retain.run import run
    from retain.seeding import seed_everything as seeded

    def seed_everything_lever(seed: int) -> torch.Generator:
        generator = seeded(seed)
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        return generator

    run_module.seed_everything = seed_everything_lever
    from retain.scenario import Scenario, Task

    rows = examples(setup)
    options = {"sdft": {"teacher": teacher, "alpha": 0.0, "top_k": None, "skip_tokens": 0,
                        "max_new_tokens": setup.max_new_tokens, "teacher_template": TEMPLATE}} \
        if method == "sdft" else None
    recipe = Recipe.for_model(setup.model, method, seed=0, options=options, lr=LR, epochs=1,
                              batch_size=setup.batch_size, spec={"dtype": "float32"})
    scenario = Scenario("language", "trl-comparison", "timing", [Task("speed", rows)], language.load_model)
    seed_everything_lever(0)
    adapter = language.load_model(recipe)
    if not early_stop:  # every rollout runs to max_new_tokens: what stopping at EOS saves
        adapter.model.generate = functools.partial(adapter.model.generate, min_new_tokens=setup.max_new_tokens)
    result = run(scenario, recipe, adapter=adapter, quiet=True)
    stats = result.objective.token_stats() if method == "sdft" else {"total": float("nan")}
    return {"seconds": result.train_seconds[0], "rollout_tokens": stats["total"] / len(rows)}


# row id -> (label, what runs, its options)
ROWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "trl": ("TRL SDFTTrainer", "trl", {}),
    "sdft": ("retain SDFT", "sdft", {}),
    "no-early-stop": ("retain SDFT, no early stop", "sdft", {"early_stop": False}),
    "ema": ("retain SDFT, EMA teacher", "sdft", {"teacher": "ema"}),
    "nondeterministic": ("retain SDFT, deterministic kernels off", "sdft", {"deterministic": False}),
    "sft": ("retain SFT", "sft", {}),
}


def build_random_qwen2(out: Path, hidden: int, layers: int, vocab: int) -> str:
    """A randomly initialised Qwen2 (tied embeddings, as Qwen2.5-0.5B) of ``vocab`` entries on the embedded
    model's tokenizer and chat template: a real architecture and vocabulary size at CPU scale. A random model
    seldom samples EOS, so its rollouts run to the maximum length."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from retain.models.tiny.tokenizer import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 11 // 4,
                         num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64), num_key_value_heads=2
                         if hidden >= 128 else 1, max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _one(row_id: str, setup: Setup) -> dict[str, Any]:
    _, kind, kwargs = ROWS[row_id]
    return run_trl(setup) if kind == "trl" else run_retain(setup, kind, **kwargs)


def _child(row_ids: list[str], setup: Setup, repeats: int, queue: mp.Queue) -> None:
    """One warm-up round, then ``repeats`` rounds over every row in turn, each training from a fresh model;
    interleaved, so that load from elsewhere on a shared machine falls on every row alike."""
    for row_id in row_ids:
        _one(row_id, setup)
    runs: dict[str, list[dict[str, Any]]] = {row_id: [] for row_id in row_ids}
    for _ in range(repeats):
        for row_id in row_ids:
            runs[row_id].append(_one(row_id, setup))
    rows = []
    for row_id, done in runs.items():
        seconds = sorted(r["seconds"] for r in done)
        rows.append({"id": row_id, "label": ROWS[row_id][0], "seconds": statistics.median(seconds),
                     "all_seconds": seconds, "rollout_tokens": statistics.mean(r["rollout_tokens"] for r in done),
                     "seconds_per_example": statistics.median(seconds) / setup.examples})
    queue.put(rows)


def measure(row_ids: list[str], setup: Setup, repeats: int) -> list[dict[str, Any]]:
    """Every row, timed in one fresh process (the benchmark's own process stays free of both trainers)."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(row_ids, setup, repeats, queue))
    proc.start()
    rows = queue.get()
    proc.join()
    return rows


def report(rows: list[dict[str, Any]], setup: Setup, device: str, out: Path) -> dict[str, Any]:
    """Print the table, write JSON and a PNG of time per example."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rich.console import Console
    from rich.table import Table

    by = {r["id"]: r for r in rows}
    trl, sdft, sft = by["trl"], by["sdft"], by["sft"]
    ratios = {"retain_sdft_over_trl": sdft["seconds_per_example"] / trl["seconds_per_example"],
              "retain_sdft_over_sft": sdft["seconds_per_example"] / sft["seconds_per_example"],
              "trl_sdft_over_retain_sft": trl["seconds_per_example"] / sft["seconds_per_example"]}
    table = Table(title=f"SDFT, retain vs TRL 1.16: {setup.model}, {setup.examples} examples, batch "
                        f"{setup.batch_size}, {setup.max_new_tokens} new tokens max, 1 pass, {device}")
    for column in ("trainer", "ms / example", "x retain SFT", "rollout tokens"):
        table.add_column(column, justify="left" if column == "trainer" else "right")
    for r in rows:
        tokens = "-" if r["rollout_tokens"] != r["rollout_tokens"] else f"{r['rollout_tokens']:.1f}"
        table.add_row(r["label"], f"{1000 * r['seconds_per_example']:.1f}",
                      f"{r['seconds_per_example'] / sft['seconds_per_example']:.2f}x", tokens)
    console = Console(width=150)
    console.print(table)
    console.print(f"retain SDFT / TRL SDFT: {ratios['retain_sdft_over_trl']:.2f}x (target <= 1); "
                  f"retain SDFT / SFT: {ratios['retain_sdft_over_sft']:.2f}x (target <= 2.5)")
    out.mkdir(parents=True, exist_ok=True)
    payload = {"setup": asdict(setup), "device": device, "rows": rows, "ratios": ratios}
    (out / "trl_sdft.json").write_text(json.dumps(payload, indent=2) + "\n")
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh([r["label"] for r in rows][::-1], [1000 * r["seconds_per_example"] for r in rows][::-1])
    ax.set_xlabel("ms per training example")
    ax.set_title(f"{setup.model}, batch {setup.batch_size}, {setup.max_new_tokens} new tokens, {device}")
    fig.tight_layout()
    fig.savefig(out / "trl_sdft.png", dpi=120)
    console.print(f"wrote {out / 'trl_sdft.json'} and {out / 'trl_sdft.png'}")
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--data", default=None, help="skill JSONL (default: the demo's first skill)")
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)} (trl, sdft and "
                                                                  "sft always run)")
    parser.add_argument("--random-qwen2", default=None, metavar="HIDDEN,LAYERS,VOCAB",
                        help="build a random Qwen2 of this shape (in --out) and use it as --model")
    parser.add_argument("--repeats", type=int, default=3, help="trainings per row, median reported")
    parser.add_argument("--out", type=Path, default=Path("results/trl_sdft"))
    args = parser.parse_args()
    import torch

    setup = Setup(model=args.model, examples=args.examples, batch_size=args.batch_size,
                  max_new_tokens=args.max_new_tokens, data=args.data)
    if args.random_qwen2:
        hidden, layers, vocab = (int(v) for v in args.random_qwen2.split(","))
        setup.model = build_random_qwen2(args.out / f"qwen2-{hidden}x{layers}-v{vocab}", hidden, layers, vocab)
    model_dir(setup)
    chosen = {"trl", "sdft", "sft", *(r.strip() for r in args.rows.split(","))}
    unknown = chosen - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))} (known: {', '.join(ROWS)})")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    row_ids = [r for r in ROWS if r in chosen]
    print(f"timing {', '.join(row_ids)}: a warm-up round and {args.repeats} timed rounds...", flush=True)
    rows = measure(row_ids, replace(setup), args.repeats)
    report(rows, setup, device, args.out)


if __name__ == "__main__":
    main()
