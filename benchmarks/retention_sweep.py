"""The README's seed-0 sweep of protected recipes: what made the difference on the way to the retention target.

    python benchmarks/retention_sweep.py [--out results/retention-sweep] [--only NAME ...] [--quick]

Each row is one ``retain bench retention --seeds 1`` run (the demo stream through a home, seed 0) with a recipe
of ``retain.bench.retention.RECIPES`` and its options changed by ``--set``, a learning rate, or the number of
training prompts per probe a home protects; each writes ``OUT/NAME/retention.json``. The script then prints
every finished row (new-skill accuracy / prior-skill retention, seconds) and writes ``OUT/sweep.json``. On the
shared 2-core machine the whole sweep takes about 100 minutes of one core (the 16-per-example row alone 20).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CE = ["--set", "rehearsal.target=ce", "--set", "rehearsal.size=1024"]
# name -> (what it shows, arguments of `retain bench retention`)
ROWS: dict[str, tuple[str, list[str]]] = {
    "sdft-2x": ("plain SDFT at 2x the rate", ["--recipe", "sdft", "--lr", "2e-4"]),
    "objective-size-1024": ("SDFT's on-policy rehearsal (the default target), 4x the buffer",
                            ["--recipe", "sdft+rehearsal", "--set", "rehearsal.size=1024"]),
    "ce-ratio-1-refreshed": ("cross-entropy on answers re-given before every task, 1 per new example",
                             ["--recipe", "sdft+rehearsal", *CE]),
    "ce-ratio-2-refreshed": ("the same, 2 per new example",
                             ["--recipe", "sdft+rehearsal", *CE, "--set", "rehearsal.ratio=2"]),
    "ce-ratio-2": ("answers kept from when each prompt was stored, 2 per new example",
                   ["--recipe", "sdft+rehearsal-ce", "--set", "rehearsal.ratio=2"]),
    "ce-ratio-4": ("kept answers, 4 per new example",
                   ["--recipe", "sdft+rehearsal-ce", "--set", "rehearsal.ratio=4"]),
    "ce-ratio-8": ("kept answers, 8 per new example", ["--recipe", "sdft+rehearsal-ce"]),
    "ce-ratio-8-2x": ("kept answers, 8 per new example, 2x the rate",
                      ["--recipe", "sdft+rehearsal-ce", "--lr", "2e-4"]),
    "ce-ratio-8-3x": ("kept answers, 8 per new example, 3x the rate (the README's best recipe)",
                      ["--recipe", "sdft+rehearsal-ce-3x"]),
    "ce-ratio-16-3x": ("kept answers, 16 per new example, 3x the rate",
                       ["--recipe", "sdft+rehearsal-ce-3x", "--set", "rehearsal.ratio=16"]),
    "ce-3x-32-per-probe": ("the best recipe with 32 protected prompts per probe",
                           ["--recipe", "sdft+rehearsal-ce-3x", "--protection-prompts", "32"]),
    "ce-3x-256-per-probe": ("the best recipe with 256 protected prompts per probe",
                            ["--recipe", "sdft+rehearsal-ce-3x", "--protection-prompts", "256"]),
    "ce-3x-ewc": ("the best recipe with online EWC (lambda 1e3) on top",
                  ["--recipe", "sdft+ewc+rehearsal", *CE, "--set", "rehearsal.refresh=false",
                   "--set", "rehearsal.ratio=8", "--lr", "3e-4"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/retention-sweep"))
    parser.add_argument("--only", nargs="+", choices=sorted(ROWS), metavar="NAME", help="these rows only")
    parser.add_argument("--quick", action="store_true", help="the bench's small budget (a smoke run)")
    args = parser.parse_args(argv)
    rows = {name: ROWS[name] for name in (args.only or ROWS)}
    done: dict[str, dict] = {}
    for name, (what, options) in rows.items():
        out = args.out / name
        command = [sys.executable, "-m", "retain", "bench", "retention", "--seeds", "1", *options, "--out", str(out)]
        print(f"{name}: {what}", flush=True)
        if subprocess.run(command + (["--quick"] if args.quick else [])).returncode != 0:
            print(f"{name}: failed", file=sys.stderr)
            return 1
        results = json.loads((out / "retention.json").read_text())
        (label, summary), = results["summary"].items()
        (run,) = results["runs"]
        done[name] = {"what": what, "arguments": options, "label": label, "lr": run["lr"],
                      "protect_prompts": results["budget"]["protect_prompts"],
                      **{key: summary[key]["mean"] for key in ("new_skill_accuracy", "prior_retention", "acc",
                                                                "seconds")}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sweep.json").write_text(json.dumps(done, indent=2) + "\n")
    for name, row in done.items():
        print(f"{name:22} new-skill {row['new_skill_accuracy']:6.1%}  prior kept {row['prior_retention']:6.1%}  "
              f"{row['seconds']:5.0f} s  {row['what']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
