"""The CLI as a user runs it, on the real embedded model: demo, learn (SFT/SDFT, full/LoRA), eval, bad input."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.data.jsonl import write_examples
from retain.data.synthetic import new_skills

pytestmark = pytest.mark.slow


def retain(*args, cwd=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "retain", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=3600)


@pytest.fixture(scope="module")
def skill_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "atbash.jsonl"
    skill = new_skills(n_train=40, n_test=8, names=["atbash"])[0]
    write_examples(path, skill.train + skill.test)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("method", ["sft", "sdft"])
@pytest.mark.parametrize("lora", [False, True])
def test_learn_then_eval(tmp_path, skill_file, method, lora):
    out = tmp_path / "out"
    args = ["learn", "embedded", skill_file, "--method", method, "--out", out, "--epochs", "1", "-q"]
    run = retain(*args, *(["--lora"] if lora else []))
    assert run.returncode == 0, run.stderr
    weights = out / ("adapter_model.safetensors" if lora else "model.safetensors")
    assert weights.exists() and (out / "tokenizer.json").exists()
    assert not (out / "sdft_teacher").exists()
    recipe = json.loads((out / "retain_recipe.json").read_text())
    assert recipe["recipe"]["method"] == method and recipe["recipe"]["model"]["lora"] is lora
    from retain.models.tiny.store import embedded_dir
    if not lora:
        assert sha(weights) != sha(embedded_dir() / "model.safetensors")
    ev = retain("eval", out, skill_file, "--scorer", "alnum", "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["examples"] == 48 and 0.0 <= result["score"] <= 1.0


def test_same_seed_same_weights(tmp_path, skill_file):
    hashes = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run = retain("learn", "embedded", skill_file, "--method", "sdft", "--out", tmp_path / name, "--epochs", "1",
                     "--seed", seed, "-q")
        assert run.returncode == 0, run.stderr
        hashes.append(sha(tmp_path / name / "model.safetensors"))
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


def test_learn_accepts_a_local_hugging_face_folder(tmp_path, skill_file):
    from retain.models.tiny.store import embedded_dir
    import shutil
    local = tmp_path / "my-model"
    shutil.copytree(embedded_dir(), local)
    run = retain("learn", local, skill_file, "--method", "sft", "--out", tmp_path / "out", "--epochs", "1", "-q")
    assert run.returncode == 0, run.stderr
    from transformers import AutoModelForCausalLM
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.model_type == "llama"


BAD_DATA = {
    "malformed": ('{"prompt": "a", "demonstration": "b"}\n{"prompt": \n', ":2: ", "malformed JSON"),
    "no_prompt": ('{"prompt": "a", "demonstration": "b"}\n{"demonstration": "b"}\n', ":2: prompt", "missing field"),
    "no_demo": ('{"prompt": "a"}\n', ":1: demonstration", "missing field"),
    "empty": ("", "", "empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    text, where, message = BAD_DATA[case]
    data = tmp_path / "bad.jsonl"
    data.write_text(text)
    out = tmp_path / "out"
    run = retain("learn", "embedded", data, "--method", "sft", "--out", out)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and str(data) + where in lines[0] and message in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["learn", "{tmp}/missing-model", "{data}", "--out", "{tmp}/out"], "does not exist"),
    (["learn", "{tmp}/empty-dir", "{data}", "--out", "{tmp}/out"], "holds no causal LM"),
    (["learn", "embedded", "{data}", "--method", "sdft", "--set", "sdft.teacher=moving", "--out", "{tmp}/out"], "sdft.teacher"),
    (["learn", "embedded", "{data}", "--method", "sdfx", "--out", "{tmp}/out"], "unknown method"),
    (["learn", "embedded", "{data}", "--epochs", "0", "--out", "{tmp}/out"], "epochs"),
    (["eval", "embedded", "{data}", "--scorer", "fuzzy"], "unknown scorer"),
])
def test_bad_options_are_one_line_exit_2(tmp_path, skill_file, args, needle):
    (tmp_path / "empty-dir").mkdir()
    run = retain(*[a.format(tmp=tmp_path, data=skill_file) for a in args])
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and needle in run.stderr
    assert not (tmp_path / "out").exists()


def test_build_base_short(tmp_path):
    run = retain("build-base", "--short", "--out", tmp_path / "base")
    assert run.returncode == 0, run.stderr
    manifest = json.loads((tmp_path / "base" / "MANIFEST.json").read_text())
    assert manifest["build_config"]["steps"] == 20
    assert manifest["files"]["model.safetensors"] == sha(tmp_path / "base" / "model.safetensors")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    assert AutoTokenizer.from_pretrained(tmp_path / "base").chat_template


def test_build_base_sizes_share_the_tokenizer(tmp_path):
    """The capacity study's sizes: M about 4M and L about 17M parameters, the embedded tokenizer and chat
    template byte for byte (the skill library is written in that vocabulary). One step each: the path, not a
    model."""
    from retain.models.tiny.store import embedded_dir

    for size, parameters, hidden in (("M", 4_288_256, 256), ("L", 17_096_192, 512)):
        run = retain("build-base", "--size", size, "--steps", "1", "--out", tmp_path / size)
        assert run.returncode == 0, run.stderr
        manifest = json.loads((tmp_path / size / "MANIFEST.json").read_text())
        assert manifest["parameters"] == parameters and manifest["build_config"]["hidden_size"] == hidden
        for name in ("tokenizer.json", "chat_template.jinja"):
            assert (tmp_path / size / name).read_bytes() == (embedded_dir() / name).read_bytes(), name


def test_demo_quick_end_to_end(tmp_path):
    run = retain("demo", "--quick", "--out", tmp_path / "demo")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "demo"
    assert (out / "accuracy_matrices.png").stat().st_size > 0 and (out / "prior_skills.png").stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["summary"]) == {"sft", "sdft", "home (default)"}
    for run_ in results["runs"]:
        assert len(run_["matrix"]) == 4 and len(run_["matrix"][0]) == 3
        assert len(run_["probe_matrix"]) == 4
        assert run_["probes"] == results["runs"][0]["probes"]  # the report's columns are the same probes
    home = next(r for r in results["runs"] if r["method"] == "home (default)")
    # the plain commands: the home's protected recipe, no option given
    assert home["recipe"]["method"] == "sdft+rehearsal" and home["tasks"] == results["runs"][0]["tasks"]
    assert "home (default)" in (out / "report.html").read_text()
    for name, gap in results["capability"]["new_skills"].items():
        assert gap["teacher"] > gap["student"], name
    assert str(out) in run.stdout.replace("\n", "")


def test_bench_speed_side_by_side(tmp_path):
    run = retain("bench", "speed", "--examples", "16", "--out", tmp_path)
    assert run.returncode == 0, run.stderr
    payload = json.loads((tmp_path / "speed.json").read_text())
    assert [r["method"] for r in payload["rows"]] == ["sft", "sdft"]
    assert all(r["seconds_per_example"] > 0 and r["peak_rss_mb"] > 0 for r in payload["rows"])
    assert payload["ratio"]["time"] == pytest.approx(
        payload["rows"][1]["seconds_per_example"] / payload["rows"][0]["seconds_per_example"])
    assert "SDFT / SFT" in run.stdout
