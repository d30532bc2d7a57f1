"""``retain bench speed --model DIR`` times SFT and SDFT on any local causal LM, side by side (issue 9 item 7);
a wrong model or option is one line and writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def retain(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "retain", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=3600)


@pytest.mark.slow
def test_bench_speed_on_a_local_model(tmp_path, tiny_model):
    model = tiny_model(tmp_path / "model")
    data = tmp_path / "skill.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"add {i} and 1", "demonstration": f"{i + 1}"}) + "\n"
                            for i in range(3)))
    run = retain("bench", "speed", "--model", model, "--data", data, "--examples", 4, "--batch-size", 2,
                 "--max-new-tokens", 3, "--out", tmp_path / "out")
    assert run.returncode == 0, run.stderr
    payload = json.loads((tmp_path / "out" / "speed.json").read_text())
    assert payload["setup"]["model"] == str(model) and payload["setup"]["max_new_tokens"] == 3
    sft, sdft = payload["rows"]
    assert (sft["method"], sdft["method"]) == ("sft", "sdft")
    assert sft["examples"] == sdft["examples"] == 4
    # SDFT's teacher is a copy of this model (not the embedded one): its bytes are this model's parameters'
    from transformers import AutoModelForCausalLM
    size = sum(p.numel() * p.element_size() for p in AutoModelForCausalLM.from_pretrained(model).parameters())
    assert sdft["extra_memory_bytes"] == size and sft["extra_memory_bytes"] == 0
    assert payload["ratio"]["time"] == pytest.approx(sdft["seconds_per_example"] / sft["seconds_per_example"])
    assert "SDFT / SFT" in run.stdout


def test_bench_speed_bad_model_or_option_is_one_line(tmp_path):
    for args, where in (((("--model", tmp_path / "missing")), "missing"), (("--dtype", "int4"), "--dtype"),
                        (("--batch-size", 0), "--batch-size")):
        run = retain("bench", "speed", *args, "--out", tmp_path / "out")
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and where in run.stderr, run.stderr
    assert not (tmp_path / "out").exists()
