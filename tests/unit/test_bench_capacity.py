"""``retain.bench.capacity``: retention results grouped by model size; its bad inputs."""

from __future__ import annotations

import json

import pytest

from retain.bench.capacity import combine, write_results
from retain.errors import RetainError


def _result(path, parameters, label, kept, new, seeds=3, quick=False, lr=1e-4):
    stat = lambda x: {"mean": x, "std": 0.01}  # noqa: E731
    doc = {"benchmark": "retention", "quick": quick, "seeds": list(range(seeds)), "budget": {"lr": lr},
           "model": {"path": f"m{parameters}", "parameters": parameters, "build_config": None},
           "summary": {label: {"prior_retention": stat(kept), "new_skill_accuracy": stat(new), "bwt": stat(0.0)}}}
    path.write_text(json.dumps(doc))
    return path


def test_groups_by_model_size_sorted_and_keeps_seeds(tmp_path):
    files = [_result(tmp_path / "a.json", 4_000_000, "sdft", 0.6, 0.7, seeds=1),
             _result(tmp_path / "b.json", 865_920, "sdft", 0.44, 0.61),
             _result(tmp_path / "c.json", 865_920, "sft", 0.31, 0.23)]
    doc = combine(files)
    assert [m["parameters"] for m in doc["models"]] == [865_920, 4_000_000]
    small, big = doc["models"]
    assert sorted(small["recipes"]) == ["sdft", "sft"] and small["recipes"]["sft"]["prior_retention"]["mean"] == 0.31
    assert big["recipes"]["sdft"]["seeds"] == 1 and big["recipes"]["sdft"]["new_skill_accuracy"]["mean"] == 0.7
    json_path, png = write_results(doc, tmp_path / "out")
    assert json.loads(json_path.read_text())["models"][1]["parameters"] == 4_000_000
    assert png.stat().st_size > 5000


@pytest.mark.parametrize("make, where", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_text("{nope"), p)[1], "is not JSON"),
    (lambda p: (p.write_text('{"benchmark": "guard"}'), p)[1], "benchmark: is not a result"),
    (lambda p: _result(p, 10, "sft", 0.1, 0.1, quick=True), "quick: is a --quick run"),
])
def test_bad_inputs_name_the_file(tmp_path, make, where):
    path = make(tmp_path / "r.json")
    with pytest.raises(RetainError) as raised:
        combine([path])
    assert str(raised.value).startswith(f"{path}: ") and where in str(raised.value)


def test_the_same_recipe_twice_for_one_model_is_refused(tmp_path):
    first = _result(tmp_path / "a.json", 10, "sft", 0.1, 0.1)
    second = _result(tmp_path / "b.json", 10, "sft", 0.2, 0.2)
    with pytest.raises(RetainError, match="also in"):
        combine([first, second])


def test_one_model_at_two_learning_rates_is_refused(tmp_path):
    first = _result(tmp_path / "a.json", 10, "sft", 0.1, 0.1)
    second = _result(tmp_path / "b.json", 10, "sdft", 0.2, 0.2, lr=3e-5)
    with pytest.raises(RetainError) as raised:
        combine([first, second])
    assert raised.value.field == "budget.lr" and raised.value.file == str(second)


def test_a_retention_recipe_trains_at_its_multiple_of_the_benchmarks_rate():
    from retain.bench.retention import RECIPES

    assert RECIPES["sdft"].rate(1e-4) == pytest.approx(1e-4)
    assert RECIPES["sdft+rehearsal-ce-3x"].rate(1e-4) == pytest.approx(3e-4)
    assert RECIPES["sdft-3x"].rate(5e-5) == pytest.approx(1.5e-4)
    assert RECIPES["sdft+rehearsal-ce-3x"].options == RECIPES["sdft+rehearsal-ce"].options


def test_every_row_of_the_retention_sweep_is_a_valid_bench_command():
    """``benchmarks/retention_sweep.py``'s rows name a recipe of the bench and options it accepts (a row that
    drifted from the recipes would fail only after an hour of the sweep)."""
    import importlib.util
    from pathlib import Path

    from retain.bench.retention import RECIPES, with_options
    from retain.cli.usage import parse_sets

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "retention_sweep.py"
    spec = importlib.util.spec_from_file_location("retention_sweep", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    for name, (_, arguments) in sweep.ROWS.items():
        pairs = dict(zip(arguments[::2], arguments[1::2]))  # every argument is an option and its value
        assert len(arguments) % 2 == 0 and set(pairs) <= {"--recipe", "--set", "--lr", "--protection-prompts"}, name
        assert pairs["--recipe"] in RECIPES, name
        sets = [value for flag, value in zip(arguments[::2], arguments[1::2]) if flag == "--set"]
        with_options(pairs["--recipe"], parse_sets(sets))
