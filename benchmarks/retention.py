"""The retention table of the README: ``retain bench retention`` (the demo stream through a home, 3 seeds).

    python benchmarks/retention.py [--seeds 3] [--quick] [--out results/retention]
"""

from __future__ import annotations

import sys

from retain.cli import main

if __name__ == "__main__":
    main(["bench", "retention", *sys.argv[1:]])
