"""``retain bench speed``: time per training example and peak memory of SFT and SDFT on one model.

Both run on the same examples, batch size, passes and model (the embedded one unless ``--model`` names a local
causal LM or a cached hub id), so the SDFT/SFT ratio is what to read (the paper reports about 4x the
wall-clock of SFT at 7B, Shenfeld et al. 2026, docs/references.md; its FLOP ratio is 2.5x). Each method
runs in a fresh child process, so peak memory is that method's: the resident-set high-water mark, and on CUDA the allocator's peak.
The examples are the demo's first skill, or ``--data`` (a skill file).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from retain.console import console as make_console
from retain.recipe import EMBEDDED


@dataclass
class SpeedSetup:
    """What both methods share: model, data, examples, batch, rollout length, LoRA, dtype."""

    model: str = EMBEDDED
    data: str | None = None
    examples: int = 64
    batch_size: int = 16
    max_new_tokens: int = 24
    lora: bool = False
    dtype: str = "auto"


def examples_for(setup: SpeedSetup) -> list:
    """The first ``setup.examples`` training examples of ``--data`` (repeated if short), else of the demo's
    first skill."""
    if setup.data is None:
        from retain.data.synthetic import new_skills
        return new_skills(n_train=setup.examples, n_test=1)[0].train
    from retain.data.jsonl import read_examples
    rows = read_examples(setup.data)
    return [rows[i % len(rows)] for i in range(setup.examples)]


def _measure(method: str, setup: SpeedSetup, queue: mp.Queue) -> None:
    from retain.domains import language
    from retain.recipe import Recipe
    from retain.run import run
    from retain.scenario import Scenario, Task
    from retain.seeding import seed_everything

    examples = examples_for(setup)
    # The embedded model's SDFT settings (no skip for short answers) with the setup's rollout length.
    options = {"sdft": language.embedded_sdft_options(max_new_tokens=setup.max_new_tokens)} \
        if method == "sdft" else None
    recipe = Recipe.for_model(setup.model, method, lora=setup.lora, seed=0, options=options, epochs=1,
                              batch_size=setup.batch_size, spec={"dtype": setup.dtype})
    scenario = Scenario("language", "speed", "timing", [Task("speed", examples)], language.load_model)
    seed_everything(0)
    adapter = language.load_model(recipe)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(scenario, recipe, adapter=adapter, quiet=True)  # no score: only training is timed
    seconds = result.train_seconds[0]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"method": method, "examples": len(examples), "seconds": seconds,
               "seconds_per_example": seconds / len(examples), "peak_rss_mb": peak_kb / 1024,
               "rss_growth_mb": (peak_kb - rss_before) / 1024,
               "cuda_peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
               "extra_memory_bytes": result.objective.memory_bytes()})


def measure_in_child(method: str, setup: SpeedSetup) -> dict:
    """One method's row, measured in a fresh spawned process (its own memory high-water mark)."""
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(method, setup, queue))
    proc.start()
    row = queue.get()
    proc.join()
    return row


def run_speed(setup: SpeedSetup | None = None, out: Path = Path("results/speed"),
              console: Console | None = None) -> dict:
    """Measure SFT then SDFT, print the table with the ratio, write ``speed.json``."""
    from retain.models.loading import resolve_model_path

    setup = setup or SpeedSetup()
    resolve_model_path(setup.model)  # a wrong path is one line before any child starts
    examples_for(setup)
    console = console or make_console()
    rows = []
    for method in ("sft", "sdft"):
        with console.status(f"timing {method} on {setup.examples} examples..."):
            rows.append(measure_in_child(method, setup))
    sft, sdft = rows
    ratio = {"time": sdft["seconds_per_example"] / sft["seconds_per_example"],
             "peak_rss": sdft["peak_rss_mb"] / sft["peak_rss_mb"]}
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    table = Table(title=f"Training speed on {setup.model} ({setup.examples} examples, batch {setup.batch_size}, "
                        f"1 pass, {setup.max_new_tokens} new tokens{', LoRA' if setup.lora else ''}, {device})")
    for col in ("method", "ms / example", "peak RSS (MB)", "RSS growth (MB)", "teacher copy (MB)"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for r in rows:
        table.add_row(r["method"], f"{1000 * r['seconds_per_example']:.1f}", f"{r['peak_rss_mb']:.0f}",
                      f"{r['rss_growth_mb']:.0f}", f"{r['extra_memory_bytes'] / 2**20:.1f}")
    table.add_row("SDFT / SFT", f"{ratio['time']:.2f}x", f"{ratio['peak_rss']:.2f}x", "", "")
    console.print(table)
    console.print("The paper reports SDFT at about 4x the wall-clock of SFT (7B models, GPU, long answers); "
                  "its FLOP ratio is 2.5x.")
    out.mkdir(parents=True, exist_ok=True)
    payload = {"setup": asdict(setup), "rows": rows, "ratio": ratio, "device": device}
    (out / "speed.json").write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"Wrote {out / 'speed.json'}")
    return payload
