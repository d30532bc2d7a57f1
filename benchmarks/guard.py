"""The guard table: ``python benchmarks/guard.py [--seeds N] [--quick] [--out DIR]``.

The same function as ``retain bench guard``: the attack classes on every shipped skill family, recall and
false positives per signal, attack success with and without the guard; JSON and PNG under ``results/guard``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from retain.bench.guard import run_and_write, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=1, help="seed 0 is the one thresholds were tuned on")
    parser.add_argument("--quick", action="store_true", help="rotr, 80 lines, three attacks at 10%% (a smoke test)")
    parser.add_argument("--out", type=Path, default=Path("results/guard"))
    parser.add_argument("--families", default="", help="comma list (default: every shipped family)")
    parser.add_argument("--attacks", default="", help="comma list of attack classes (default: all)")
    parser.add_argument("--rates", default="", help="comma list (default 0.01,0.03,0.05,0.1)")
    parser.add_argument("--train", default="rotr", help="families whose attacks are trained; 'none' for none")
    parser.add_argument("--epochs", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=220)

    def names(text: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in text.split(",") if s.strip())
    results, paths = run_and_write(args.seeds, args.quick, args.out, describe=console.log,
                                   families=names(args.families) or None, attacks=names(args.attacks) or None,
                                   rates=tuple(float(r) for r in names(args.rates)) or None,
                                   train_families=() if args.train == "none" else names(args.train),
                                   first_seed=args.first_seed, epochs=args.epochs or None)
    console.print(table(results))
    console.print(f"total {results['seconds']:.0f} s; wrote " + ", ".join(map(str, paths)))


if __name__ == "__main__":
    main()
