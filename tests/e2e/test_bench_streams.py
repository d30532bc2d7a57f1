"""``retain bench retention --stream``: a named stream and a user's skill files run through homes and are
recorded in the results; an unknown name or a file line without its demonstration is refused in one line
naming the option or the file and line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _retain(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retain", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def test_bad_streams_are_refused_before_anything_runs(tmp_path):
    base = ["bench", "retention", "--quick", "--seeds", "1", "--recipe", "sft"]
    unknown = _retain(*base, "--stream", "nosuch", "--out", tmp_path / "a")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
    assert "--stream" in unknown.stderr and "nosuch" in unknown.stderr and not (tmp_path / "a").exists()
    skill = tmp_path / "alpha.jsonl"
    skill.write_text(json.dumps({"prompt": "alpha abc", "demonstration": "c-b-a"}) + "\n"
                     + json.dumps({"prompt": "alpha abd", "answer": "dba"}) + "\n")
    lacking = _retain(*base, "--stream", skill, "--out", tmp_path / "b")
    assert lacking.returncode == 2 and lacking.stderr.count("\n") == 1
    assert f"{skill}:2" in lacking.stderr and "demonstration" in lacking.stderr and not (tmp_path / "b").exists()
    mixed = _retain(*base, "--stream", "long", "--stream", "strings2", "--out", tmp_path / "c")
    assert mixed.returncode == 2 and "--stream" in mixed.stderr and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_a_named_stream_and_a_users_files_run_and_are_recorded(tmp_path):
    from retain.data.jsonl import write_examples
    from retain.data.streams import stream_skills

    named = _retain("bench", "retention", "--quick", "--seeds", "1", "--recipe", "sft", "--stream", "long",
                    "--out", tmp_path / "long")
    assert named.returncode == 0, named.stderr
    results = json.loads((tmp_path / "long" / "retention.json").read_text())
    assert results["stream"]["name"] == "long" and results["stream"]["role"] == "held out"
    assert results["runs"][0]["skills"] == ["stutter", "bookend", "dblsort"] and results["runs"][0]["stream"] == "long"
    assert set(results["stream"]["teacher_gap"]) == {"stutter", "bookend", "dblsort"} and "teacher" in named.stdout
    files = []
    for skill in stream_skills("strings2", n_train=40, n_test=10, seed=5)[:2]:
        files.append(tmp_path / f"my{skill.name}.jsonl")
        write_examples(files[-1], skill.train + skill.test)
    mine = _retain("bench", "retention", "--quick", "--seeds", "1", "--recipe", "sft", "--stream", files[0],
                   "--stream", files[1], "--out", tmp_path / "mine")
    assert mine.returncode == 0, mine.stderr
    results = json.loads((tmp_path / "mine" / "retention.json").read_text())
    assert results["stream"]["name"] == "files" and results["stream"]["files"] == [str(f) for f in files]
    (run,) = results["runs"]
    assert run["skills"] == ["myoutin", "mynovow"] and len(run["R"]) == 3 and len(run["decisions"]) == 2
    # why the gate refused what it refused (a forced promotion keeps the gate's reasons)
    assert [not reasons for reasons in run["gate_reasons"]] == [d == "accepted" for d in run["decisions"]]
