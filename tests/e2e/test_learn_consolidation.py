"""``retain learn`` with a training objective and a consolidation method composed, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.data.jsonl import write_examples
from retain.data.synthetic import new_skills


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_learn_embedded_with_sdft_ewc(tmp_path: Path) -> None:
    data = tmp_path / "skill.jsonl"
    skill = new_skills(n_train=32, n_test=8, seed=0)[0]
    write_examples(data, skill.train + skill.test)
    prior = tmp_path / "prior.jsonl"
    prior.write_text("".join(f'{{"prompt": "reverse {w}"}}\n' for w in ("abc", "hello", "world", "retain")))
    out = tmp_path / "model"
    args = [sys.executable, "-m", "retain", "learn", "embedded", str(data), "--method", "sdft+ewc", "--out", str(out),
            "--epochs", "1", "-q", "--set", "ewc.fisher_samples=16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    refused = subprocess.run(args, capture_output=True, text=True, timeout=3600, env=env)
    assert refused.returncode == 2 and not out.exists()
    assert refused.stderr.count("\n") == 1 and "--prior" in refused.stderr
    done = subprocess.run(args + ["--prior", str(prior)], capture_output=True, text=True, timeout=3600, env=env)
    assert done.returncode == 0, done.stderr
    weights = out / "model.safetensors"
    assert weights.exists() and (out / "tokenizer.json").exists()
    recipe = json.loads((out / "retain_recipe.json").read_text())
    assert recipe["recipe"]["method"] == "sdft+ewc" and recipe["recipe"]["options"]["ewc"]["fisher"] == "sampled"
    assert recipe["protect"] == [str(prior)]
    from retain.models.tiny.store import embedded_dir
    assert sha(weights) != sha(embedded_dir() / "model.safetensors")
