"""Why online EWC on the CartPole views looked worse at width 256 than at 64 and 1024 (issue 21).

    python benchmarks/cartpole_width_dip.py [--out results/cartpole-width-dip] [--widths 64,256,1024]

Three measurements on the validation split (never the test split), each for seeds 0, 1, 2:

1. ``lambda``: online EWC at each width with lambda 1e2 and 1e3 (1e3 is what the published table tuned at width 64
   and what the issue's probe used at 256): ACC, retention, and each task's score right after learning it
   (plasticity) and at the end.
2. ``lr``: at widths 64 and 256 with lambda 1e3, the benchmark's rate 3e-3 against 1e-3 (and 30 epochs at
   1e-3), to see whether the rate or the budget at that width is the cause.
3. ``fisher``: naive fine-tuning on the first view alone, then the model's mean probability of the expert's action
   on that view's demonstrations and the total of the exact diagonal Fisher (what online EWC's penalty weighs
   the first task's parameters by), per width.

Writes ``OUT/dip.json`` and prints the tables; every run is kept in ``OUT/runs.jsonl`` and reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from retain.bench.consolidation import one_thread, run_stream
from retain.bench.consolidation_sweep import GRID, Point, options
from retain.methods.ewc import diagonal_fisher
from retain.recipe import ModelSpec, Recipe
from retain.run import run

SEEDS = (0, 1, 2)


def cached(path: Path, key: str, compute) -> dict:
    done = {}
    if path.exists():
        done = {json.loads(line)["key"]: json.loads(line) for line in path.read_text().splitlines() if line}
    if key not in done:
        record = {"key": key, **compute()}
        with path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        return record
    return done[key]


def ewc_run(width: int, lam: float, seed: int, lr: float | None = None, epochs: int | None = None) -> dict:
    point = Point("control", width)
    scenario = point.scenario("val", seed, False)
    scenario.train = replace(scenario.train, lr=lr or scenario.train.lr, epochs=epochs or scenario.train.epochs)
    run = run_stream(scenario, "sft+ewc", options(point, "online-ewc", seed, lam, GRID), seed)
    R = run["R"]
    return {"acc": run["metrics"]["acc"], "retention": run["metrics"]["retention"],
            "just_learned": [R[j + 1][j] for j in range(len(R[0]))], "final": R[-1]}


def fisher_after_first_task(width: int, seed: int) -> dict:
    point = Point("control", width)
    scenario = point.scenario("val", seed, False)
    recipe = Recipe(model=ModelSpec(path="control:cartpole-views"), method="sft", seed=seed,
                    train=replace(scenario.train, seed=seed))
    adapter = scenario.make_adapter(recipe)
    task = scenario.tasks[0]
    scenario.tasks = [task]
    run(scenario, recipe, adapter=adapter, quiet=True)  # naive fine-tuning on the first view, in place
    examples = task.train
    with torch.no_grad():
        logits, targets = adapter.predictions(examples)
        p_expert = F.softmax(logits.float(), -1).gather(1, targets.unsqueeze(1)).mean().item()
        margin = (logits[:, 1] - logits[:, 0]).abs().mean().item()
    fisher = diagonal_fisher(adapter, examples, "exact", limit=500, chunk=64, seed=seed)
    total = sum(f.sum().item() for f in fisher.values())
    count = sum(f.numel() for f in fisher.values())
    return {"p_expert": p_expert, "mean_abs_logit_margin": margin, "fisher_total": total,
            "fisher_mean": total / count, "parameters": count, "score": task.score(adapter)}


def mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/cartpole-width-dip"))
    parser.add_argument("--widths", default="64,256,1024")
    parser.add_argument("--lr-widths", default="64,256")
    parser.add_argument("--fisher-widths", default="32,64,128,256,512,1024")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = args.out / "runs.jsonl"
    widths = [int(w) for w in args.widths.split(",")]
    doc: dict = {"split": "val", "seeds": list(SEEDS), "lambda": {}, "lr": {}, "fisher": {}}
    with one_thread():
        for width in widths:
            for lam in (100.0, 1000.0):
                rows = [cached(runs, f"ewc {width} {lam} {seed}", lambda: ewc_run(width, lam, seed))
                        for seed in SEEDS]
                doc["lambda"][f"{width} {lam:g}"] = rows
                print(f"width {width:5d} lambda {lam:6g}: ACC {mean([r['acc'] for r in rows])}  kept "
                      f"{mean([r['retention'] for r in rows])}  by seed ACC "
                      f"{[round(r['acc'], 2) for r in rows]}  task 1 at the end {[round(r['final'][0], 2) for r in rows]}",
                      flush=True)
        for width in (int(w) for w in args.lr_widths.split(",")):
            for lr, epochs in ((3e-3, 15), (1e-3, 15), (1e-3, 30)):
                suffix = "" if (lr, epochs) == (3e-3, 15) else f" lr {lr} epochs {epochs}"
                rows = [cached(runs, f"ewc {width} 1000.0 {seed}{suffix}",
                               lambda: ewc_run(width, 1000.0, seed, lr, epochs)) for seed in SEEDS]
                doc["lr"][f"width {width} lr {lr:g} epochs {epochs}"] = rows
                print(f"width {width} lambda 1e3 lr {lr:g} epochs {epochs}: ACC {mean([r['acc'] for r in rows])}  "
                      f"kept {mean([r['retention'] for r in rows])}  just learned "
                      f"{mean([statistics.fmean(r['just_learned']) for r in rows])}  by seed ACC "
                      f"{[round(r['acc'], 2) for r in rows]}", flush=True)
        for width in (int(w) for w in args.fisher_widths.split(",")):
            rows = [cached(runs, f"fisher {width} {seed}", lambda: fisher_after_first_task(width, seed))
                    for seed in SEEDS]
            doc["fisher"][str(width)] = rows
            print(f"after view 1, width {width:5d}: p(expert) {mean([r['p_expert'] for r in rows])}  "
                  f"|logit margin| {mean([r['mean_abs_logit_margin'] for r in rows])}  Fisher total "
                  f"{mean([r['fisher_total'] for r in rows])}  score {mean([r['score'] for r in rows])}",
                  flush=True)
    (args.out / "dip.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
