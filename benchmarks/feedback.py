"""The feedback table: ``retain bench feedback`` (a simulated user corrects `retain serve` through the openai
client; the home learns every round; server latency with 1, 4 and 16 clients).

    python benchmarks/feedback.py [--rounds 4] [--per-round 64] [--quick] [--out results/feedback]
"""

from __future__ import annotations

import sys

from retain.cli import main

if __name__ == "__main__":
    main(["bench", "feedback", *sys.argv[1:]])
