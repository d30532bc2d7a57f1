"""``retain bench consolidation`` as a user runs it: the real CLI in a subprocess, small budgets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from retain.bench.consolidation import validate
from retain.bench import language_tuning as language
from retain.errors import RetainError

METRIC_KEYS = {"acc", "bwt", "fwt", "forgetting", "retention", "time_ratio", "memory_bytes"}
METHODS = {"sft", "ewc", "online-ewc", "kfac", "si", "mas", "l2", "replay", "ewc+replay", "joint"}


def retain(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retain", *args], capture_output=True, text=True, timeout=3600)


def check_results(out: Path, domain: str, scenarios: set[str]) -> dict:
    results = json.loads((out / "consolidation.json").read_text())
    assert results["benchmark"] == "consolidation" and results["split"] == "test" and results["quick"]
    assert set(results["domains"]) == {domain}
    assert set(results["domains"][domain]) == scenarios
    for name, entry in results["domains"][domain].items():
        T = len(entry["tasks"])
        assert set(entry["methods"]) == METHODS
        for label, method in entry["methods"].items():
            assert set(method["summary"]) == METRIC_KEYS
            for run in method["runs"]:
                assert len(run["R"]) == T + 1 and all(len(row) == T for row in run["R"])
                assert all(0.0 <= v <= 1.0 for row in run["R"] for v in row)
        summary = {label: m["summary"] for label, m in entry["methods"].items()}
        assert summary["sft"]["time_ratio"]["mean"] == 1.0
        assert summary["sft"]["memory_bytes"]["mean"] == 0
        for label in ("ewc", "si", "mas", "l2", "replay", "joint"):
            assert summary[label]["memory_bytes"]["mean"] > 0, label
        # online EWC holds one anchor and one Fisher, separate EWC one pair per learned task
        assert summary["ewc"]["memory_bytes"]["mean"] == T * summary["online-ewc"]["memory_bytes"]["mean"]
        assert (out / f"matrix_{domain}_{name}.png").stat().st_size > 1000
    assert (out / f"retention_{domain}.png").stat().st_size > 1000
    return results


@pytest.mark.slow
def test_quick_vision_benchmark(tmp_path: Path) -> None:
    done = retain("bench", "consolidation", "--quick", "--domain", "vision", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    check_results(tmp_path, "vision", {"split-task", "split-class", "permuted"})
    assert "split-class" in done.stdout and "retention" in done.stdout


@pytest.mark.slow
def test_quick_control_benchmark(tmp_path: Path) -> None:
    done = retain("bench", "consolidation", "--quick", "--domain", "control", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    results = check_results(tmp_path, "control", {"cartpole-views"})
    assert results["domains"]["control"]["cartpole-views"]["kind"] == "task-incremental"


@pytest.mark.slow
def test_language_quick(tmp_path: Path) -> None:
    done = retain("bench", "consolidation", "--domain", "language", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "consolidation.json").read_text())
    assert results["quick"] and results["seeds"] == [0] and set(results["domains"]) == {"language"}
    entry = results["domains"]["language"]["demo-stream"]
    T, P = len(entry["tasks"]), len(entry["probes"])
    assert T >= 2 and "in-context" in entry["probes"]
    assert set(entry["methods"]) == set(language.METHODS)
    for label, method in entry["methods"].items():
        assert method["spec"] == language.METHODS[label]
        assert method["lr"] == pytest.approx(1e-4 * (3.0 if label == "sdft+rehearsal-ce-3x" else 1.0)), label
        assert set(method["summary"]) == METRIC_KEYS | {"prior_retention", "new_skill_accuracy"}
        run, = method["runs"]
        assert len(run["R"]) == T + 1 and all(len(row) == T for row in run["R"])
        assert len(run["probe_R"]) == T + 1 and all(len(row) == P for row in run["probe_R"])
        assert all(0.0 <= v <= 1.0 for rows in (run["R"], run["probe_R"]) for row in rows for v in row)
        assert 0.0 <= method["summary"]["prior_retention"]["mean"] <= 1.5
    summary = {label: m["summary"] for label, m in entry["methods"].items()}
    assert summary["sft"]["time_ratio"]["mean"] == 1.0 and summary["sft"]["memory_bytes"]["mean"] == 0
    # SDFT's EMA teacher is a model copy; EWC adds anchors and Fisher, replay and joint their stored examples
    assert summary["sdft"]["memory_bytes"]["mean"] > 0
    for label in ("sdft+ewc", "sdft+replay"):
        assert summary[label]["memory_bytes"]["mean"] > summary["sdft"]["memory_bytes"]["mean"], label
    for label in ("sft+ewc", "sft+replay", "joint"):
        assert summary[label]["memory_bytes"]["mean"] > 0, label
    assert (tmp_path / "matrix_language_demo-stream.png").stat().st_size > 1000
    assert (tmp_path / "retention_language.png").stat().st_size > 1000
    assert "prior kept" in done.stdout and "sdft+replay" in done.stdout


# every start of the CLI costs seconds, so the other bad values are checked on validate() directly
@pytest.mark.parametrize("args, field", [
    (["--domain", "language-of-birds"], "domain"),
    (["--seeds", "0"], "seeds"),
])
def test_bad_values_exit_2_and_write_nothing(tmp_path: Path, args: list[str], field: str) -> None:
    out = tmp_path / "out"
    done = retain("bench", "consolidation", "--quick", "--out", str(out), *args)
    assert done.returncode == 2, done.stderr
    assert field in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.parametrize("domain, seeds, split, methods, field", [
    ("all", 1, "train", ["sft"], "split"),
    ("all", 1, "test", ["ewc", "replay"], "methods"),
    ("all", 1, "test", ["sft", "elastic"], "methods"),
    ("vision", -2, "test", ["sft"], "seeds"),
    ("vision", 1, "test", ["sft", "sdft"], "methods"),
    ("language", 1, "test", ["sft", "ewc"], "methods"),
    ("language", 1, "test", ["sdft"], "methods"),
])
def test_validate_names_the_bad_field(domain: str, seeds: int, split: str, methods: list[str], field: str) -> None:
    with pytest.raises(RetainError) as err:
        validate(domain, seeds, split, methods)
    assert err.value.field == field


def test_validate_expands_all() -> None:
    assert validate("all", 3, "test", ["sft"]) == ["vision", "control", "language"]
    assert validate("all", 1, "test", ["sft", "ewc", "sdft+ewc"]) == ["vision", "control", "language"]
