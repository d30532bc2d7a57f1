"""The capacity table of the README: ``retain bench capacity`` over ``retain bench retention --model`` results.

    retain build-base --size M --steps 1000 --out builds/M      # the M model (see README for the time)
    retain bench retention --model builds/M --recipe sft --recipe sdft --recipe sdft+rehearsal --seeds 1 \\
        --out results/retention-M
    python benchmarks/capacity.py results/retention-*/retention.json [--out results/capacity]

The README's table: benchmarks/published/retention-S/{sft,sdft,sdft-rehearsal-ce-3x}.json,
benchmarks/published/retention-S-32-per-probe/sdft-rehearsal.json (S's rehearsal measured, as M's was, with 32
protected prompts per probe, before the home drew 128) and benchmarks/published/retention-M/*.json
(sft-sdft, sdft-rehearsal, sdft-rehearsal-ce-3x). The lower-rate M rows (``--lr 3e-5 --seeds 1``) are a
separate result: one model is compared at one rate.
"""

from __future__ import annotations

import sys

from retain.cli import main

if __name__ == "__main__":
    main(["bench", "capacity", *sys.argv[1:]])
