"""The guard table: ``python benchmarks/guard.py [--seeds N] [--quick] [--out DIR]``.

The same function as ``retain bench guard``: planted backdoors and label flips on the embedded model, recall and
false positives per signal, attack success with and without the guard; JSON and PNG under ``results/guard``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from retain.bench.guard import run_and_write, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one seed, 64 lines, 5%% only (under a minute)")
    parser.add_argument("--out", type=Path, default=Path("results/guard"))
    args = parser.parse_args()
    console = Console(width=220)
    results, paths = run_and_write(args.seeds, args.quick, args.out, describe=console.log)
    console.print(table(results))
    console.print(f"total {results['seconds']:.0f} s; wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
