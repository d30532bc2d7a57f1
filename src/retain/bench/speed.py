"""``retain bench speed``: time per training example and peak memory of SFT and SDFT on the embedded model.

Both run in one process on the same examples, batch size and passes, so the SDFT/SFT ratio is what to read
(the paper reports about 4x the wall-clock of SFT at 7B, REFERENCE section 1). Peak memory is the process's
resident-set high-water mark, measured in a fresh child process per method.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from retain.data.synthetic import new_skills
from retain.domains import language
from retain.recipe import EMBEDDED, Recipe
from retain.run import run
from retain.scenario import Scenario, Task
from retain.seeding import seed_everything


def _measure(method: str, examples: int, lora: bool, queue: mp.Queue) -> None:
    skill = new_skills(n_train=examples, n_test=1)[0]
    options = {"sdft": language.embedded_sdft_options()} if method == "sdft" else None
    recipe = Recipe.for_model(EMBEDDED, method, lora=lora, seed=0, options=options, epochs=1, batch_size=16)
    # no score: only training is timed
    scenario = Scenario("language", "speed", "timing", [Task(skill.name, skill.train)], language.load_model)
    seed_everything(0)
    adapter = language.load_model(recipe)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(scenario, recipe, adapter=adapter, quiet=True)
    seconds = result.train_seconds[0]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"method": method, "examples": examples, "seconds": seconds, "seconds_per_example": seconds / examples,
               "peak_rss_mb": peak_kb / 1024, "rss_growth_mb": (peak_kb - rss_before) / 1024,
               "extra_memory_bytes": result.objective.memory_bytes()})


def run_speed(examples: int = 64, lora: bool = False, out: Path = Path("results/speed"),
              console: Console | None = None) -> dict:
    """Measure SFT then SDFT, print the table with the ratio, write ``speed.json``."""
    console = console or Console()
    ctx = mp.get_context("spawn")
    rows = []
    for method in ("sft", "sdft"):
        queue: mp.Queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(method, examples, lora, queue))
        with console.status(f"timing {method} on {examples} examples..."):
            proc.start()
            rows.append(queue.get())
            proc.join()
    sft, sdft = rows
    ratio = {"time": sdft["seconds_per_example"] / sft["seconds_per_example"],
             "peak_rss": sdft["peak_rss_mb"] / sft["peak_rss_mb"]}
    table = Table(title=f"Training speed on the embedded model ({examples} examples, batch 16, 1 pass"
                        f"{', LoRA' if lora else ''}, {torch.get_num_threads()} threads)")
    for col in ("method", "ms / example", "peak RSS (MB)", "RSS growth (MB)", "teacher copy (MB)"):
        table.add_column(col, justify="right" if col != "method" else "left")
    for r in rows:
        table.add_row(r["method"], f"{1000 * r['seconds_per_example']:.1f}", f"{r['peak_rss_mb']:.0f}",
                      f"{r['rss_growth_mb']:.0f}", f"{r['extra_memory_bytes'] / 2**20:.1f}")
    table.add_row("SDFT / SFT", f"{ratio['time']:.2f}x", f"{ratio['peak_rss']:.2f}x", "", "")
    console.print(table)
    console.print("The paper reports SDFT at about 4x the wall-clock of SFT (7B models, GPU, long answers).")
    out.mkdir(parents=True, exist_ok=True)
    payload = {"rows": rows, "ratio": ratio, "lora": lora, "threads": torch.get_num_threads()}
    (out / "speed.json").write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"Wrote {out / 'speed.json'}")
    return payload
