"""``retain bench retention`` end to end: a quick run through real homes writes its table, JSON and PNG."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quick_retention_bench_through_a_home(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "retain", "bench", "retention", "--quick", "--seeds", "1", "--out", str(tmp_path)]
    bad = subprocess.run(base + ["--recipe", "nope"], capture_output=True, text=True, timeout=3600, env=env)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--recipe" in bad.stderr
    done = subprocess.run(base + ["--recipe", "sft"], capture_output=True, text=True, timeout=3600, env=env)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "retention.json").read_text())
    (run,) = results["runs"]
    assert run["label"] == "sft" and run["skills"] == ["rotr", "swap", "ends"] and len(run["R"]) == 4
    assert len(run["decisions"]) == 3 and set(run["decisions"]) <= {"accepted", "forced"}
    # row 0 is the base; the probes' row 0 is what init measured, so nothing is retained above 1 by construction
    assert run["probe_R"][0] and 0 <= results["summary"]["sft"]["prior_retention"]["mean"] <= 1.5
    assert (tmp_path / "retention.png").stat().st_size > 1000
