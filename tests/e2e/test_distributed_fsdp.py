"""Training is right under FSDP2 (issue 9, item 1): two CPU processes (gloo) under ``accelerate launch`` with
the shipped ``examples/accelerate/fsdp.yaml`` (made for the CPU and Llama's decoder layer), the model's parameters
sharded across them, through retain's own ``api.learn``. SFT saves the weights one process saves on the same
global batch; SDFT, L2 and merge the weights DDP saves on the same two processes; only rank 0 writes.

Accelerate 1.15 does not shard on the CPU: with that config and a CPU process group it quietly wraps the model
in DDP (its state turns to FSDP only for GPU-like devices). Those runs ("ddp") are the reference, and retain
says so in one warning. The "fsdp2" runs set the state as Accelerate sets it on GPUs (FSDP, the FSDP2 plugin
read from the environment the config became); everything after that (prepare's ``fully_shard``, the loop,
generation, SDFT's teacher, the penalties, saving) is the code that runs on GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

WORKER = '''
import datetime, json, os, sys
import torch
from accelerate import Accelerator
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

model_dir, data, work, mode, methods = sys.argv[1:6]
rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
PartialState(cpu=True, timeout=datetime.timedelta(seconds=90))  # a collective one process skips fails, not hangs
if mode == "fsdp2":  # left to Accelerate ("ddp"), the config runs as DDP on the CPU; set FSDP2 as on GPUs
    state = Accelerator(cpu=True).state
    state.fsdp_plugin = FullyShardedDataParallelPlugin()
    state.distributed_type = PartialState._shared_state["distributed_type"] = DistributedType.FSDP
from retain.api import learn

for method in methods.split(","):  # "sdft@lora": SDFT under LoRA
    name, lora = method.split("@")[0], method.endswith("@lora")
    options = {"sdft": {"skip_tokens": 0, "max_new_tokens": 4}} if name == "sdft" else {}
    result = learn(model_dir, data, name, os.path.join(work, f"{method}-{mode}-{world}"), seed=0, epochs=2,
                   lr=1e-2, batch_size=8, test_fraction=0.2, options=options, device="cpu", lora=lora,
                   protect=[data] if "+" in method else None)  # what a consolidation method anchors to
    model = result.adapter.model
    local = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in model.parameters())
    # greedy answers that stop at different steps on the two processes (one token here, four there)
    lengths = [len(c) for c in result.adapter.generate([[5, 6, 7]], max_new_tokens=1 + 3 * rank, do_sample=False)]
    with open(os.path.join(work, f"{method}-{mode}-{world}-{rank}.json"), "w") as f:
        json.dump({"out": result.out, "scores": result.scores, "model": type(model).__name__,
                   "param": type(next(model.parameters())).__name__, "local": local,
                   "whole": sum(p.numel() for p in model.parameters()), "lengths": lengths}, f)
'''

ROWS = [("add one to 3", "4a"), ("what is b", "bb"), ("x", "cd"), ("a longer prompt here", "de"), ("sum 1 2", "3e"),
        ("q", "ff"), ("name it", "ab"), ("reverse ab", "ba"), ("tell c", "cc"), ("last one", "dd")]

# Every comparison is of float32 sums taken in another order (FSDP2 reduce-scatters the two halves' gradients and
# sums the clipping norm over shards; DDP all-reduces whole gradients; one process takes the whole batch's
# gradient at once): measured 0 to 3e-7 after two AdamW steps. 1e-5 is three orders below how far training
# moves the weights (about 1.5e-2 here), so a lost gradient average, a wrong share of the batch, a penalty
# counted twice or a teacher that is not the student shows.
TOLERANCE = 1e-5
# compared with DDP: L2's penalty on sharded parameters, merge's snapshot, LoRA (SDFT's teacher a second adapter)
AGAINST_DDP = "sdft,sft+l2,sft+merge,sft@lora,sdft@lora"


def _launch(work: Path, model: Path, n: int, mode: str, methods: str, ok: bool = True) -> subprocess.CompletedProcess:
    """The worker in one process, or in two under ``accelerate launch`` with the shipped FSDP config (made for
    CPU processes and Llama's decoder layer)."""
    args = [str(work / "worker.py"), str(model), str(work / "d.jsonl"), str(work), mode, methods]
    if n > 1:
        config = (Path(__file__).parents[2] / "examples" / "accelerate" / "fsdp.yaml").read_text()
        assert "use_cpu: false" in config and "Qwen2DecoderLayer" in config
        (work / "fsdp.yaml").write_text(config.replace("use_cpu: false", "use_cpu: true")
                                        .replace("Qwen2DecoderLayer", "LlamaDecoderLayer"))
        args = ["-m", "accelerate.commands.launch", "--config_file", str(work / "fsdp.yaml"), "--num_processes",
                str(n), "--main_process_port", "0", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=env, cwd=work)
    assert (run.returncode == 0) == ok, run.stderr[-4000:]
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    work = tmp_path_factory.mktemp("fsdp")
    (work / "worker.py").write_text(WORKER)
    (work / "d.jsonl").write_text("".join(json.dumps({"prompt": p, "demonstration": d}) + "\n" for p, d in ROWS))
    fsdp = _launch(work, tiny_model_dir, 2, "fsdp2", f"sft,{AGAINST_DDP}")
    ddp = _launch(work, tiny_model_dir, 2, "ddp", AGAINST_DDP)
    _launch(work, tiny_model_dir, 1, "one", "sft")
    return work, fsdp, ddp


def _info(work: Path, name: str) -> dict:
    return json.loads((work / f"{name}.json").read_text())


def _saved(folder: Path, name: str = "model") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / f"{name}.safetensors")


def _worst(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[n] - b[n]).abs().max()) for n in a)


@pytest.mark.parametrize("method", ["sft", "sdft"])
def test_the_model_is_really_sharded(runs, method):
    work, *_ = runs
    for rank in (0, 1):
        info = _info(work, f"{method}-fsdp2-2-{rank}")
        assert info["model"] == "FSDPLlamaForCausalLM" and info["param"] == "DTensor", info
        assert info["local"] < 0.6 * info["whole"], info  # each process holds about half


def test_sft_under_fsdp2_saves_what_one_process_saves_on_the_same_global_batch(runs, tiny_model_dir):
    work, *_ = runs
    two, one = _saved(work / "sft-fsdp2-2"), _saved(work / "sft-one-1")
    assert _worst(two, one) < TOLERANCE, _worst(two, one)
    assert _worst(two, _saved(tiny_model_dir)) > 1e-3  # training moved the weights


@pytest.mark.parametrize("method", ["sft+l2", "sft+merge"])
def test_consolidation_under_fsdp2_saves_what_ddp_saves(runs, method):
    work, *_ = runs
    fsdp, ddp = _saved(work / f"{method}-fsdp2-2"), _saved(work / f"{method}-ddp-2")
    assert _worst(fsdp, ddp) < TOLERANCE, _worst(fsdp, ddp)
    assert _worst(fsdp, _saved(work / "sft-fsdp2-2")) > 1e-3  # the method changed what SFT alone ends with


@pytest.mark.parametrize("method", ["sft@lora", "sdft@lora"])
def test_lora_under_fsdp2_saves_the_adapter_ddp_saves(runs, method):
    work, *_ = runs
    fsdp, ddp = (_saved(work / f"{method}-{mode}-2", "adapter_model") for mode in ("fsdp2", "ddp"))
    assert _worst(fsdp, ddp) < TOLERANCE, _worst(fsdp, ddp)
    assert max(float(t.abs().max()) for n, t in fsdp.items() if "lora_B" in n) > 1e-3  # LoRA's B starts at 0
    assert _info(work, f"{method}-fsdp2-2-0")["param"] == "DTensor"


def test_ewc_under_fsdp2_is_refused_in_one_line_before_training(tmp_path, runs, tiny_model_dir):
    work, *_ = runs
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "d.jsonl").write_text((work / "d.jsonl").read_text())
    run = _launch(tmp_path, tiny_model_dir, 2, "fsdp2", "sft+ewc", ok=False)
    assert "RetainError: method: ewc estimates importance from per-prediction gradients" in run.stderr, \
        run.stderr[-3000:]
    assert "learning d" not in run.stderr and not (tmp_path / "sft+ewc-fsdp2-2").exists()


def test_sdft_under_fsdp2_saves_what_ddp_saves(runs, tiny_model_dir):
    # SDFT samples on each process's share of the batch, so one process draws other samples; DDP on the same
    # two processes draws the same ones. The teacher (an EMA of the student) is a whole copy under FSDP2.
    work, *_ = runs
    fsdp, ddp = _saved(work / "sdft-fsdp2-2"), _saved(work / "sdft-ddp-2")
    assert _worst(fsdp, ddp) < TOLERANCE, _worst(fsdp, ddp)
    assert _worst(fsdp, _saved(tiny_model_dir)) > 1e-3


@pytest.mark.parametrize("method", ["sft", "sdft"])
def test_only_rank_0_writes_a_loadable_model_and_prints(runs, method):
    from transformers import AutoModelForCausalLM

    work, fsdp, _ = runs
    main, other = _info(work, f"{method}-fsdp2-2-0"), _info(work, f"{method}-fsdp2-2-1")
    assert main["out"] == str(work / f"{method}-fsdp2-2") and other["out"] is None
    config = json.loads((work / f"{method}-fsdp2-2" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]  # not FSDP2's wrapper class
    loaded = AutoModelForCausalLM.from_pretrained(work / f"{method}-fsdp2-2").state_dict()
    saved = _saved(work / f"{method}-fsdp2-2")
    assert all(torch.equal(loaded[n], saved[n]) for n in saved)
    assert fsdp.stderr.count("held-out exact score") == 6, fsdp.stderr  # one line per method, from rank 0
    # a sharded model is scored by every process (its forwards gather from all), with the same result
    assert main["scores"]["after"] == other["scores"]["after"]


def test_generation_on_a_sharded_model_when_the_processes_stop_at_different_steps(runs):
    work, *_ = runs
    assert _info(work, "sft-fsdp2-2-0")["lengths"] == [1]
    assert _info(work, "sft-fsdp2-2-1")["lengths"] == [4]


def test_an_fsdp_config_left_to_accelerate_on_cpu_processes_runs_as_ddp_and_says_so(runs):
    work, fsdp, ddp = runs
    assert _info(work, "sdft-ddp-2-0")["param"] == "Parameter"  # whole, not sharded
    assert ddp.stderr.count("the FSDP config runs as DDP on these MULTI_CPU processes") == 1, ddp.stderr[-3000:]
    assert "runs as DDP" not in fsdp.stderr
