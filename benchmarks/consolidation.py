"""The consolidation table: ``python benchmarks/consolidation.py [--domain ...] [--seeds N] [--quick]``.

The same function as ``retain bench consolidation``. ``--tune`` runs the hyperparameter search on the
validation split (never the test split) and prints, per domain and method, the value with the best mean
validation ACC on each scenario; those values are ``retain.bench.consolidation.OPTIONS``. The grid is
``retain.bench.consolidation.GRID``; the curves against width and task count (tuned per point) are
``retain bench consolidation --sweep width|tasks``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from retain.bench.consolidation import DOMAINS, GRID, METHODS, method_options, run_stream
from retain.cli.bench import make_console, run_with_progress

def tune(domains: list[str], seeds: int, labels: list[str], console: Console) -> None:
    """Grid search on the validation split; per scenario, print every value's mean ACC and the chosen one."""
    torch.set_num_threads(1)
    for domain in domains:
        streams = {seed: DOMAINS[domain]("val", seed, False) for seed in range(seeds)}
        for index, scenario_name in enumerate(s.name for s in streams[0]):
            table = Table(title=f"{domain} / {scenario_name}: validation ACC and retention, mean of {seeds} seeds")
            for column in ("method", "option", "value", "val ACC", "val retention", "chosen"):
                table.add_column(column)
            for label in labels:
                method, key, values = GRID[label]
                scores = {}
                for value in values:
                    runs = []
                    for seed, scenarios in streams.items():
                        options = method_options(scenario_name, label, seed)
                        options.setdefault(method, {})[key] = value
                        runs.append(run_stream(scenarios[index], METHODS[label], options, seed)["metrics"])
                    scores[value] = (statistics.fmean(r["acc"] for r in runs),
                                     statistics.fmean(r["retention"] for r in runs))
                best = max(scores, key=lambda v: scores[v][0])
                for value, (acc, kept) in scores.items():
                    table.add_row(label, f"{method}.{key}", f"{value:g}", f"{acc:.3f}", f"{kept:.3f}",
                                  "*" if value == best else "")
            console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="all")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("results/consolidation"))
    parser.add_argument("--tune", action="store_true")
    parser.add_argument("--only", default=",".join(label for label in GRID if label in METHODS),
                        help="methods to tune, comma separated")
    args = parser.parse_args()
    console = make_console()
    if args.tune:
        tune(list(DOMAINS) if args.domain == "all" else [args.domain], args.seeds or 2, args.only.split(","), console)
        return
    run_with_progress(args.domain, args.seeds, quick=args.quick, out=args.out, split="test", methods=None,
                      console=console)


if __name__ == "__main__":
    sys.exit(main())
