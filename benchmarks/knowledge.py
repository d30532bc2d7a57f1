"""The knowledge table: ``retain bench knowledge`` (facts from documents, SFT vs SDFT vs the home's default
learn, closed-book accuracy and prior skills kept, 3 seeds).

    python benchmarks/knowledge.py [--seeds 3] [--quick] [--out results/knowledge]
"""

from __future__ import annotations

import sys

from retain.cli import main

if __name__ == "__main__":
    main(["bench", "knowledge", *sys.argv[1:]])
