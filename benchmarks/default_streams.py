"""The README's headline table: the plain commands (`retain init HOME`, then `retain learn HOME FILE` per skill)
against plain SDFT, side by side in one run per stream, on every named stream (demo and strings2 were tuned on,
long is held out).

    python benchmarks/default_streams.py [--seeds 3] [--out benchmarks/published/default-searched]

writes one folder per stream (`retention.json`, `retention.png`) and prints each stream's table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

STREAMS = ("demo", "strings2", "long")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/published/default-searched"))
    parser.add_argument("--stream", action="append", choices=STREAMS, help="Only these streams (repeatable).")
    args = parser.parse_args()
    for stream in args.stream or STREAMS:
        subprocess.run([sys.executable, "-m", "retain", "bench", "retention", "--recipe", "sdft", "--recipe",
                        "default", "--stream", stream, "--seeds", str(args.seeds), "--out", str(args.out / stream)],
                       check=True)


if __name__ == "__main__":
    main()
