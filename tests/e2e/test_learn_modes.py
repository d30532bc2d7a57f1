"""``retain learn``'s two modes: each mode-specific option is refused in the other mode (one line naming it,
exit 2, nothing written); the renamed options keep their old spellings with a one-line notice; the
Accelerate environment's mixed precision reaches the Accelerator unless --mixed-precision is given."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.cli.learn import FOLDER, HOME, MODE_OF
from retain.data.jsonl import write_examples
from retain.data.synthetic import new_skills

# A value for each mode-specific option (a value that is also the default still counts as given).
SAMPLES = {
    "force": ["--force", "why"], "mlflow": ["--mlflow", "file:mlruns"], "wait": ["--wait", "0"],
    "name": ["--name", "n"], "accept_flagged": ["--accept-flagged", "why"],
    "out": ["--out", "{tmp}/out"], "overwrite": ["--overwrite"], "prior": ["--prior", "{tmp}/prior.jsonl"],
    "dtype": ["--dtype", "auto"], "device": ["--device", "cpu"], "mixed_precision": ["--mixed-precision", "no"],
    "grad_accum": ["--grad-accum", "2"], "gradient_checkpointing": ["--gradient-checkpointing"],
    "max_prompt_tokens": ["--max-prompt-tokens", "16"], "max_new_tokens": ["--max-new-tokens", "8"],
    "trust_remote_code": ["--trust-remote-code"], "attn_implementation": ["--attn-implementation", "eager"],
    "from_feedback": ["--from-feedback"], "since": ["--since", "v1"], "documents": ["--documents", "{tmp}/docs"],
    "questions": ["--questions", "{tmp}/q.jsonl"], "no_rate_search": ["--no-rate-search"],
    "augment": ["--augment", "2"],
}



@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A folder `retain learn` takes for a home (its marker): the mode checks run before a home is opened."""
    root = tmp_path / "home"
    root.mkdir()
    (root / "home.json").write_text('{"format": "retain-home/1"}\n')
    return root


def test_every_mode_specific_option_has_a_sample():
    assert set(SAMPLES) == set(MODE_OF), "give each new MODE_OF row a sample value in SAMPLES"


@pytest.mark.parametrize("option", sorted(MODE_OF))
def test_an_option_of_the_other_mode_is_refused_in_one_line(run_main, tmp_path, home, option):
    mode, why = MODE_OF[option]
    sample = [a.format(tmp=tmp_path) for a in SAMPLES[option]]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    if mode == HOME:  # given when learning into a model folder
        args = ["learn", "embedded", tmp_path / "skill.jsonl", *(["--out", tmp_path / "o"] if option != "out" else []),
                *sample]
    else:
        assert mode == FOLDER
        args = ["learn", home, tmp_path / "skill.jsonl", *sample]
    code, out, err = run_main(*args)
    assert code == 2 and err.count("\n") == 1, err
    assert err == f"retain: error: {sample[0]}: {why}\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_the_old_spellings_still_work_with_a_notice(run_main, tmp_path, home):
    code, _, err = run_main("learn", home, tmp_path / "skill.jsonl", "--protect", tmp_path / "p.jsonl")
    assert code == 2 and err.splitlines() == [
        "retain: warning: --protect is deprecated; use --prior",
        "retain: error: --prior: a home protects its own suite and state; add prior data with `retain suite add`"]
    code, _, err = run_main("init", tmp_path / "h", "--protect-prompts", "0")
    assert code == 2 and err.splitlines() == ["retain: warning: --protect-prompts is deprecated; use --protection-prompts",
                                              "retain: error: --protection-prompts: must be >= 1, got 0"]
    code, _, err = run_main("init", tmp_path / "h", "--protect-with=nosuch")
    assert code == 2 and err.splitlines()[0] == "retain: warning: --protect-with is deprecated; use --protection"
    assert err.splitlines()[1].startswith("retain: error: --protection: unknown consolidation method 'nosuch'")
    code, _, err = run_main("bench", "retention", "--protect-prompts", "0")
    assert code == 2 and err.splitlines()[1] == "retain: error: --protection-prompts: must be >= 1, got 0"
    assert not (tmp_path / "h").exists()


def test_a_value_is_never_taken_for_an_old_option_name(run_main, tmp_path):
    """Only option names are renamed: a value spelled like one (here a skill's name) passes through."""
    code, _, err = run_main("learn", "embedded", tmp_path / "s.jsonl", "--out", tmp_path / "o", "--name",
                            "--protect")
    assert code == 2 and err == "retain: error: --name: only applies when learning into a home\n"


@pytest.mark.slow
@pytest.mark.parametrize("env, flag, expected", [
    ({"ACCELERATE_MIXED_PRECISION": "bf16"}, [], "bf16"),  # accelerate launch's config, passed as the env
    ({"ACCELERATE_MIXED_PRECISION": "bf16"}, ["--mixed-precision", "no"], "no"),  # the flag wins
    ({}, [], "no"),
])
def test_accelerates_mixed_precision_reaches_the_accelerator(tmp_path, env, flag, expected):
    skill = new_skills(n_train=16, n_test=4, seed=0)[0]
    data = tmp_path / "skill.jsonl"
    write_examples(data, skill.train + skill.test)
    probe = ("import sys, runpy\n"
             "import retain.train.loop as loop\n"
             "made = loop.make_accelerator\n"
             "def spy(cpu, mixed_precision='no'):\n"
             "    accelerator = made(cpu, mixed_precision)\n"
             "    print('accelerator mixed precision:', accelerator.mixed_precision, file=sys.stderr)\n"
             "    return accelerator\n"
             "loop.make_accelerator = spy\n"
             "sys.argv = ['retain'] + sys.argv[1:]\n"
             "runpy.run_module('retain', run_name='__main__')\n")
    base = {k: v for k, v in os.environ.items() if k != "ACCELERATE_MIXED_PRECISION"}
    run = subprocess.run([sys.executable, "-c", probe, "learn", "embedded", str(data), "--method", "sft",
                          "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / "out"), "-q", *flag],
                         capture_output=True, text=True, timeout=600, env={**base, "OMP_NUM_THREADS": "1", **env})
    assert run.returncode == 0, run.stderr
    assert f"accelerator mixed precision: {expected}" in run.stderr
    recipe = json.loads((tmp_path / "out" / "retain_recipe.json").read_text())
    assert recipe["recipe"]["train"]["mixed_precision"] == expected
