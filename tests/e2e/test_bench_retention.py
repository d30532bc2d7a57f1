"""``retain bench retention`` end to end: a quick run through real homes writes its table, JSON and PNG; the
same over a model of the embedded family built here (the capacity study's path), and its bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _retain(*args, timeout=3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retain", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


@pytest.mark.slow
def test_quick_retention_bench_through_a_home(tmp_path):
    base = ["bench", "retention", "--quick", "--seeds", "1", "--out", tmp_path]
    bad = _retain(*base, "--recipe", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--recipe" in bad.stderr
    done = _retain(*base, "--recipe", "default", "--first-seed", "1")
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "retention.json").read_text())
    (run,) = results["runs"]
    assert results["seeds"] == [1] and run["seed"] == 1  # --first-seed adds seeds to an earlier run's
    assert run["label"] == "default" and run["skills"] == ["rotr", "swap", "ends"] and len(run["R"]) == 4
    assert "CPU s" in done.stdout
    # the plain commands: the home's rate and its protection, named by nothing but the home
    assert run["lr"] == [pytest.approx(3e-4)] and run["protected"][0].startswith("rehearsal: protects")
    assert len(run["decisions"]) == 3 and set(run["decisions"]) <= {"accepted", "forced"}
    # row 0 is the base; the probes' row 0 is what init measured, so nothing is retained above 1 by construction
    assert run["probe_R"][0] and 0 <= results["summary"]["default"]["prior_retention"]["mean"] <= 1.5
    assert results["model"]["path"] == "embedded" and results["model"]["parameters"] == 865920
    assert (tmp_path / "retention.png").stat().st_size > 1000


@pytest.mark.slow
def test_quick_retention_over_a_family_model_and_a_foreign_one(tmp_path, tiny_model):
    """A model built by ``build-base`` (here the 20-step build) runs the same stream with the embedded probes
    as its suite; a model with another tokenizer is refused in one line before anything is written."""
    foreign = _retain("bench", "retention", "--quick", "--seeds", "1", "--recipe", "sft", "--model",
                      tiny_model(tmp_path / "tiny"), "--out", tmp_path / "foreign")
    assert foreign.returncode == 2 and foreign.stderr.count("\n") == 1 and "embedded family" in foreign.stderr
    assert not (tmp_path / "foreign").exists()
    assert _retain("build-base", "--short", "--out", tmp_path / "base").returncode == 0
    done = _retain("bench", "retention", "--quick", "--seeds", "1", "--recipe", "sft", "--model", tmp_path / "base",
                   "--lr", "5e-5", "--out", tmp_path / "family")
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "family" / "retention.json").read_text())
    (run,) = results["runs"]
    from retain.data.synthetic import probe_skills

    assert run["probes"] == sorted(p.name for p in probe_skills()) and len(run["R"]) == 4
    assert results["model"]["build_config"]["steps"] == 20 and results["model"]["parameters"] == 865920
    assert results["budget"]["lr"] == 5e-5 and results["recipes"]["sft"]["lr_scale"] == 1.0
    assert run["lr"] == [5e-5]  # the rate every learn of the stream recorded in the home
    bad_lr = _retain("bench", "retention", "--quick", "--lr", "0", "--out", tmp_path / "bad-lr")
    assert bad_lr.returncode == 2 and "--lr" in bad_lr.stderr and not (tmp_path / "bad-lr").exists()


@pytest.mark.slow
def test_options_over_a_recipe_and_the_prompts_each_probe_protects(tmp_path):
    """``--set`` changes the chosen recipe's options (the label says so, the JSON records them typed);
    ``--protection-prompts`` is what each home protects; an option the recipe cannot take is refused up front."""
    base = ["bench", "retention", "--quick", "--seeds", "1", "--recipe", "sdft+rehearsal-ce"]
    for bad, field in ((["--set", "ewc.lam=10"], "--set"), (["--set", "rehearsal.ratio=lots"], "--set"),
                       (["--set", "rehearsal.nope=1"], "--set"),
                       (["--protection-prompts", "0"], "--protection-prompts")):
        refused = _retain(*base, *bad, "--out", tmp_path / "bad")
        assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and field in refused.stderr, bad
        assert not (tmp_path / "bad").exists()
    done = _retain(*base, "--recipe", "sdft+rehearsal-ce-3x-init", "--set", "rehearsal.ratio=2",
                   "--protection-prompts",
                   "4", "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "out" / "retention.json").read_text())
    labels = ["sdft+rehearsal-ce rehearsal.ratio=2.0", "sdft+rehearsal-ce-3x-init rehearsal.ratio=2.0"]
    assert list(results["summary"]) == labels and "4 protected" in done.stdout
    for label in labels:
        assert results["recipes"][label]["options"]["rehearsal"] == {"target": "ce", "refresh": False, "ratio": 2.0,
                                                                     "size": 1024}
    assert results["budget"]["protect_prompts"] == 4 and [run["label"] for run in results["runs"]] == labels
    # 6 probes x 4, kept by init's buffer: the home's default rehearsal size, or the recipe's when it inits with it
    assert [run["protected"] for run in results["runs"]] == [
        ["rehearsal: protects the suite's training prompts (24; 24 prompts held, size 256)"],
        ["rehearsal: protects the suite's training prompts (24; 24 prompts held, size 1024)"]]
