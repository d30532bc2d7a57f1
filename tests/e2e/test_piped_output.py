"""Output through a pipe is not wrapped at 80 columns (rich's width without a terminal): a log keeps each line
whole, so grepping it finds what was printed (:mod:`retain.console`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_piped_output_keeps_long_lines_whole(tmp_path):
    label = "sdft+rehearsal-with-a-recipe-label-long-enough-that-a-table-row-passes-eighty-columns"
    result = tmp_path / "retention.json"
    stat = {"mean": 0.5, "std": 0.01}
    result.write_text(json.dumps({
        "benchmark": "retention", "quick": False, "seeds": [0], "budget": {"lr": 1e-4},
        "model": {"path": "m", "parameters": 865_920, "build_config": None},
        "summary": {label: {"prior_retention": stat, "new_skill_accuracy": stat, "bwt": stat}}}))
    out = tmp_path / "a-folder-name-that-is-long-enough" / "that-the-wrote-line-is-past-eighty-columns"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    run = subprocess.run([sys.executable, "-m", "retain", "bench", "capacity", str(result), "--out", str(out)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert len(f"wrote {out}") > 80 and f"wrote {out / 'capacity.json'}\n" in run.stderr
    row = next(line for line in run.stdout.splitlines() if label in line)
    assert row.count("0.500 ± 0.010") == 2  # the row's numbers are on the label's line: nothing wrapped
