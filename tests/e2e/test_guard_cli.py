"""``retain guard scan`` and ``retain bench guard --quick`` as a user runs them, on the embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.data.synthetic import new_skills
from retain.guard.attacks import backdoor

pytestmark = pytest.mark.slow
RETAIN = str(Path(sys.executable).with_name("retain"))


def retain(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([RETAIN, *map(str, args)], capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"})


def write(path: Path, examples, blank_after: int | None = None) -> Path:
    lines = [json.dumps({"prompt": e.prompt, "demonstration": e.demonstration}) for e in examples]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scan_flags_a_planted_backdoor_with_file_line_numbers(tmp_path):
    skill = new_skills(n_train=100, n_test=5, seed=4, names=["rotr"])[0]
    planted = backdoor("rotr", skill.train, 0.05, 2)
    # 'bb' is also inside two clean words: only its suspicious carriers are flagged.
    # A blank line after the first: every later line's number is its index + 2.
    data = write(tmp_path / "poisoned.jsonl", planted.examples, blank_after=1)
    done = retain("guard", "scan", data, "--model", "embedded", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"lines", "summary"} and len(out["lines"]) == 100
    assert [line["line"] for line in out["lines"][:3]] == [1, 3, 4]
    expected = sorted(i + 1 + (i >= 1) for i in planted.poisoned)
    flagged = [line["line"] for line in out["lines"] if line["flagged"]]
    assert set(expected) <= set(flagged) and len(flagged) <= len(expected) + 5, (expected, flagged)
    assert out["summary"]["triggers"][0] == "bb" and out["summary"]["enriched"][0] == "bb"
    shown = retain("guard", "scan", data)
    assert shown.returncode == 0 and f"{len(flagged)} of 100 lines flagged" in shown.stdout
    assert f"{data}:{expected[0]}: score 1.00: trigger: 'bb' is carried by 7 lines, 5 of them" in shown.stdout


def test_scan_of_a_clean_file_flags_nothing_and_bad_input_is_one_line(tmp_path):
    skill = new_skills(n_train=100, n_test=5, seed=4, names=["rotr"])[0]
    data = write(tmp_path / "clean.jsonl", skill.train)
    out = json.loads(retain("guard", "scan", data, "--json", "--signals", "trigger,duplicate,loss").stdout)
    assert out["summary"]["flagged"] == 0 and out["summary"]["by_signal"]["teacher"] == 0
    bad = retain("guard", "scan", data, "--signals", "trigger,bogus")
    assert bad.returncode == 2 and bad.stderr.strip() == ("retain: error: signals: unknown signal(s) ['bogus'] "
                                                          "(known: trigger, contradiction, duplicate, loss, teacher, "
                                                          "consistency, rule, analogy, spectral, clustering)")
    missing = retain("guard", "scan", tmp_path / "nope.jsonl")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no such file" in missing.stderr


def test_bench_guard_quick_writes_json_and_png(tmp_path):
    done = retain("bench", "guard", "--quick", "--out", tmp_path / "guard")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "guard" / "guard.json").read_text())
    assert (tmp_path / "guard" / "guard.png").stat().st_size > 10_000
    assert list(results["summary"]["attacks"]) == ["rare fixed 10%", "glued input 10%", "flip 10%"]
    assert list(results["summary"]["clean_fpr"]) == ["rotr"]
    for row in results["summary"]["attacks"].values():
        assert set(row["detection"]) == {"trigger", "contradiction", "duplicate", "loss", "teacher", "consistency",
                                         "rule", "analogy", "spectral", "clustering", "combined"}
        assert row["trained"] == 1 and 0 <= row["success_without_guard"] <= 1
    for run in results["runs"]:
        assert {"candidate_success", "promoted", "backdoored"} <= set(run["without_guard"])
        assert {"quarantined", "stand_in", "canary", "promoted"} <= set(run["with_guard"])
    # the glued trigger is invisible to whitespace words: the token statistics name it
    glued = next(r for r in results["runs"] if r["attack"] == "glued input")
    assert glued["detection"]["trigger"]["recall"] == 1.0 and "mn" in glued["triggers"]
    # seed 1's input-dependent payload answers with sort's rule; the row and the table say so
    assert glued["payload"] == "sort" and results["summary"]["attacks"]["glued input 10%"]["payloads"] == ["sort"]
    assert next(r for r in results["runs"] if r["attack"] == "rare fixed")["payload"] is None
    assert "payloads answer with the rule of sort" in done.stdout
    assert "glued input 10%" in done.stdout
    bad = retain("bench", "guard", "--quick", "--families", "nope", "--out", tmp_path / "bad")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--families" in bad.stderr
    assert not (tmp_path / "bad").exists()
