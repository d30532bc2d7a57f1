"""Distributed training is right (issue 9, item 1): two processes under ``torchrun`` (gloo, CPU) end with
bit-identical weights for SFT and SDFT; SFT on two processes matches one process on the same global batch;
only the main process prints, scores and writes ``--out``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

# One worker per process: learn a small skill with SFT, then with SDFT, through retain's own run path
# (api.learn_skill -> run -> train_task), and save what each process ends with.
WORKER = '''
import json, os, sys
import torch
from retain.api import learn_skill
from retain.data.skills import Example, Skill
from retain.recipe import Recipe

model_dir, out_dir, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
# demonstrations of one length: SFT's token mean over the global batch is then the mean of the halves' means
train = [Example(prompt=p, demonstration=d) for p, d in [
    ("add one to 3", "4a"), ("what is b", "bb"), ("x", "cd"), ("a longer prompt here", "de"),
    ("sum 1 2", "3e"), ("q", "ff"), ("name it", "ab"), ("reverse ab", "ba")]]
skill = Skill(name="toy", train=train, test=train[:2])
for method, options in (("sft", {}), ("sdft", {"sdft": {"skip_tokens": 0, "max_new_tokens": 4}})):
    if method not in methods:
        continue
    recipe = Recipe.for_model(model_dir, method, seed=0, lr=1e-2, epochs=2, batch_size=8, options=options,
                              spec={"device": "cpu"})
    result = learn_skill(recipe, skill)
    torch.save(result.adapter.model.state_dict(), os.path.join(out_dir, f"{method}-{world}-{rank}.pt"))
    with open(os.path.join(out_dir, f"{method}-{world}-{rank}.json"), "w") as f:
        json.dump(result.run.matrix, f)
'''


def _torchrun(n: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n),
                           "--standalone", *args], capture_output=True, text=True, timeout=900, env=env,
                          cwd=cwd)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    work = tmp_path_factory.mktemp("ddp")
    (work / "worker.py").write_text(WORKER)
    two = _torchrun(2, str(work / "worker.py"), str(tiny_model_dir), str(work), "sft,sdft", cwd=work)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, str(work / "worker.py"), str(tiny_model_dir), str(work), "sft"],
                         capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert one.returncode == 0, one.stderr[-3000:]
    return work, two


def _state(work: Path, name: str) -> dict[str, torch.Tensor]:
    return torch.load(work / f"{name}.pt", weights_only=True)


@pytest.mark.parametrize("method", ["sft", "sdft"])
def test_ranks_end_bit_identical(runs, tiny_model_dir, method):
    work, _ = runs
    r0, r1 = _state(work, f"{method}-2-0"), _state(work, f"{method}-2-1")
    start = _state_of(tiny_model_dir)
    assert r0.keys() == r1.keys()
    for name in r0:
        assert torch.equal(r0[name], r1[name]), name
    assert any(not torch.equal(r0[n], start[n]) for n in start), "training changed nothing"


def _state_of(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_sft_on_two_processes_matches_one_process_on_the_same_global_batch(runs):
    work, _ = runs
    two, one = _state(work, "sft-2-0"), _state(work, "sft-1-0")
    worst = max(float((two[n] - one[n]).abs().max()) for n in one)
    assert worst < 1e-5, worst


def test_only_the_main_process_prints_and_evaluates(runs):
    work, two = runs
    assert two.stderr.count("held-out exact score") == 2, two.stderr  # one line per method, not per process
    for method in ("sft", "sdft"):
        main, other = (json.loads((work / f"{method}-2-{r}.json").read_text()) for r in (0, 1))
        assert all(v == v for row in main for v in row)  # scored (before and after) ...
        assert all(v != v for row in other for v in row)  # ... by the main process only (NaN elsewhere)


def test_cli_learn_under_torchrun_writes_once(tmp_path, tiny_model_dir):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(f'{{"prompt": "q {i}", "demonstration": "a{i % 10}"}}\n' for i in range(10)))
    out = tmp_path / "out"
    run = _torchrun(2, "-m", "retain", "learn", str(tiny_model_dir), str(data), "--method", "sft", "--out",
                    str(out), "--epochs", "1", "--batch-size", "4", "--device", "cpu", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("Saved to") == 1 and run.stderr.count("held-out") == 1, run.stderr
    assert (out / "model.safetensors").exists() and (out / "retain_recipe.json").exists()
