"""Width and task count as options of the vision and control streams, and the sweeps' plumbing: the validation
choice, the test runs with the chosen options, resuming, the written files, and bad input (one line, exit 2,
nothing written). Tiny widths and quick budgets, so every test runs in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from retain.bench import consolidation, consolidation_sweep as sweep
from retain.domains import control_cartpole as control
from retain.domains import vision_digits as vision
from retain.errors import RetainError
from retain.recipe import ModelSpec, Recipe
from retain.train.loop import TrainConfig

TINY = TrainConfig(epochs=1, batch_size=32)


def hidden_sizes(scenario) -> list[int]:
    recipe = Recipe(model=ModelSpec(path="x"), method="sft", seed=0)
    model = scenario.make_adapter(recipe).model
    return [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)][:-1]


def test_width_sets_both_hidden_layers_and_defaults_to_hidden() -> None:
    assert [hidden_sizes(s) for s in vision.scenarios("val", quick=True, width=24)] == [[24, 24]] * 3
    assert hidden_sizes(vision.scenarios("val", quick=True)[2]) == list(vision.HIDDEN)
    assert hidden_sizes(control.scenarios("val", quick=True, width=12)[0]) == [12, 12]
    assert hidden_sizes(control.scenarios("val", quick=True)[0]) == list(control.HIDDEN)


@pytest.mark.parametrize("tasks", [10, 20])
def test_longer_permuted_streams_extend_the_five_task_one(tasks: int) -> None:
    five = vision.permuted_digits("test", TINY)
    longer = vision.permuted_digits("test", TINY, tasks=tasks)
    again = vision.permuted_digits("test", TINY, tasks=tasks)
    assert len(longer.tasks) == tasks and [t.name for t in longer.tasks][-1] == f"permutation {tasks}"
    firsts = [t.train[0].x for t in longer.tasks]
    assert torch.equal(firsts[0], five.tasks[0].train[0].x)  # task 1 is the identity, unpermuted
    x_train, *_ = vision.load("test")
    assert torch.equal(firsts[0], torch.from_numpy(x_train[0]))
    assert all(torch.equal(a.train[0].x, b.train[0].x) for a, b in zip(five.tasks, longer.tasks))
    assert all(torch.equal(a.train[0].x, b.train[0].x) for a, b in zip(longer.tasks, again.tasks))  # seeded
    assert len({tuple(x.tolist()) for x in firsts}) == tasks  # every permutation is its own


@pytest.mark.parametrize("call, field", [
    (lambda: vision.scenarios("val", quick=True, width=0), "width"),
    (lambda: control.scenarios("val", quick=True, width=0), "width"),
    (lambda: vision.permuted_digits("val", TINY, tasks=1), "tasks"),
    (lambda: consolidation.validate("vision", 1, "test", ["sft"], width=0), "width"),
    (lambda: consolidation.validate("vision", 1, "test", ["sft"], tasks=1), "tasks"),
    (lambda: sweep.validate_sweep("bogus", "all"), "sweep"),
    (lambda: sweep.validate_sweep("tasks", "control"), "domain"),
    (lambda: sweep.validate_sweep("width", "language"), "domain"),
    (lambda: sweep.validate_sweep("width", "all", widths=[64, 0]), "width"),
    (lambda: sweep.validate_sweep("tasks", "vision", task_counts=[5, 1]), "tasks"),
    (lambda: sweep.validate_sweep("width", "all", task_counts=[5]), "tasks"),
    (lambda: sweep.validate_sweep("width", "all", methods=["sft", "elastic"]), "methods"),
    (lambda: sweep.validate_sweep("width", "all", tune_seeds=0), "tune_seeds"),
])
def test_bad_values_name_their_field(call, field: str) -> None:
    with pytest.raises(RetainError) as err:
        call()
    assert err.value.field == field


def test_points_of_each_sweep() -> None:
    width = sweep.validate_sweep("width", "all")
    assert [(p.domain, p.width) for p in width] == [("vision", w) for w in sweep.WIDTHS["vision"]] + \
        [("control", w) for w in sweep.WIDTHS["control"]]
    assert {p.task_count() for p in width} == {5, 4}
    tasks = sweep.validate_sweep("tasks", "all")
    assert [(p.domain, p.width, p.task_count()) for p in tasks] == [("vision", 128, n) for n in (5, 10, 20)]
    assert [p.width for p in sweep.validate_sweep("tasks", "vision", width=32)] == [32] * 3


def test_choose_takes_the_best_validation_acc_and_the_earlier_value_on_a_tie() -> None:
    assert sweep.choose({10.0: 0.5, 100.0: 0.7, 1000.0: 0.6}) == 100.0
    assert sweep.choose({10.0: 0.7, 100.0: 0.7, 1000.0: 0.2}) == 10.0
    assert sweep.choose({1.0: 0.1}) == 1.0


def test_kfac_is_swept_only_when_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    from retain.methods import registry

    monkeypatch.delitem(registry.CONSOLIDATIONS, "kfac", raising=False)
    assert sweep.available_methods() == ["sft", "online-ewc", "si", "replay"]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Every run_stream call of the sweep: (scenario name, tasks, hidden, spec, options, seed)."""
    calls: list[tuple] = []
    real = sweep.run_stream

    def spy(scenario, spec, options, seed, on_task=None):
        calls.append((scenario.name, len(scenario.tasks), spec, json.dumps(options, sort_keys=True), seed))
        return real(scenario, spec, options, seed, on_task)
    monkeypatch.setattr(sweep, "run_stream", spy)
    return calls


GRID = {"online-ewc": ("ewc", "lam", [1e6, 1.0])}


def test_a_tiny_sweep_tunes_on_val_runs_the_choice_on_test_and_resumes(tmp_path: Path, counted: list) -> None:
    ticks: list[str] = []

    def progress(total: int):
        ticks.append(f"total {total}")
        return lambda label: (lambda: ticks.append(label))

    results = sweep.run_sweep("tasks", "vision", task_counts=[2, 3], width=8, methods=["sft", "online-ewc"],
                              seeds=2, tune_seeds=1, quick=True, grid=GRID, out=tmp_path, progress=progress)
    # per point: 2 grid values x 1 tuning seed on val, then 2 methods x 2 seeds on test
    assert len(counted) == 2 * (2 + 2 * 2)
    assert ticks[0] == f"total {(2 + 3) * (2 + 4)}" and len(ticks) == 1 + (2 + 3) * (2 + 4)
    entry = results["domains"]["vision"]
    assert entry["scenario"] == "permuted" and [p["tasks"] for p in entry["points"]] == [2, 3]
    for point in entry["points"]:
        assert point["hidden"] == [8, 8] and point["tune_seeds"] == [0]
        ewc = point["methods"]["online-ewc"]
        best = max(ewc["validation"], key=lambda v: v["acc"])
        assert ewc["chosen"] == best["value"] and ewc["option"] == "ewc.lam"
        assert ewc["options"]["ewc"] == {"lam": ewc["chosen"], "mode": "online", "seed": 0}
        assert [r["seed"] for r in ewc["runs"]] == [0, 1]
        for label, method in point["methods"].items():
            accs = [r["metrics"]["acc"] for r in method["runs"]]
            assert method["summary"]["acc"]["mean"] == pytest.approx(np.mean(accs))
            assert method["summary"]["acc"]["std"] == pytest.approx(np.std(accs))
            assert all(len(r["R"]) == point["tasks"] + 1 for r in method["runs"])
        assert "chosen" not in point["methods"]["sft"]
    # the test runs used the chosen strength, the validation runs every value
    test_ewc = [c for c in counted if c[2] == "sft+ewc" and c[1] == 2]
    assert {json.loads(c[3])["ewc"]["lam"] for c in test_ewc} == {1.0, 1e6}
    chosen = entry["points"][0]["methods"]["online-ewc"]["chosen"]
    assert sum(json.loads(c[3])["ewc"]["lam"] == chosen for c in test_ewc) == 1 + 2
    written = sweep.write_sweep(results, tmp_path)
    assert [p.name for p in written] == ["consolidation_tasks.json", "consolidation_tasks.md", "tasks_vision.png"]
    assert json.loads(written[0].read_text())["sweep"] == "tasks"
    table = written[1].read_text()
    assert "| online-ewc |" in table and "tasks 3" in table and f"ewc.lam={chosen:g}" in table
    assert written[2].stat().st_size > 1000
    assert len((tmp_path / sweep.RUNS_FILE).read_text().splitlines()) == len(counted)
    # resumed: nothing trains again, the same numbers come back
    counted.clear()
    again = sweep.run_sweep("tasks", "vision", task_counts=[2, 3], width=8, methods=["sft", "online-ewc"],
                            seeds=2, tune_seeds=1, quick=True, grid=GRID, out=tmp_path, resume=True)
    assert counted == [] and again["domains"] == json.loads(json.dumps(results["domains"]))
    # without resume the old runs are dropped
    sweep.run_sweep("tasks", "vision", task_counts=[2], width=8, methods=["sft"], seeds=1, quick=True,
                    out=tmp_path)
    assert len(counted) == 1 and len((tmp_path / sweep.RUNS_FILE).read_text().splitlines()) == 1


def test_wide_points_tune_on_seed_zero_only(counted: list) -> None:
    results = sweep.run_sweep("width", "control", widths=[4, sweep.FULL_TUNING_UP_TO + 1], quick=True,
                              methods=["online-ewc"], seeds=2, grid={"online-ewc": ("ewc", "lam", [10.0])})
    narrow, wide = results["domains"]["control"]["points"]
    assert narrow["tune_seeds"] == [0, 1] and wide["tune_seeds"] == [0]
    assert any("seed 0 only" in note for note in results["notes"])
    assert [(c[4]) for c in counted] == [0, 1, 0, 1, 0, 0, 1]


def test_the_benchmark_records_width_and_tasks() -> None:
    results = consolidation.run_benchmark("vision", 1, quick=True, methods=["sft"], width=8, tasks=3)
    assert results["hidden"] == {"vision": [8, 8]} and results["permuted_tasks"] == 3 and "notes" in results
    assert len(results["domains"]["vision"]["permuted"]["tasks"]) == 3


@pytest.mark.parametrize("args, option", [
    (["--width", "0"], "--width"),
    (["--width", "abc"], "--width"),
    (["--width", "64,128"], "--width"),
    (["--tasks", "1"], "--tasks"),
    (["--sweep", "bogus"], "--sweep"),
    (["--sweep", "width", "--width", "64,0"], "--width"),
    (["--sweep", "tasks", "--tasks", "5,1"], "--tasks"),
    (["--sweep", "width", "--tasks", "10"], "--tasks"),
    (["--sweep", "width", "--split", "val"], "--split"),
    (["--sweep", "tasks", "--domain", "control"], "domain"),
    (["--sweep", "width", "--methods", "sft,elastic"], "methods"),
    (["--resume"], "--resume"),
    (["--tune-seeds", "2"], "--tune-seeds"),
    (["--lr", "1e-3"], "--lr"),
    (["--sweep", "width", "--lr", "0"], "--lr"),
])
def test_bad_options_are_one_line_exit_2_and_write_nothing(run_main, tmp_path: Path, args: list[str],
                                                           option: str) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_main("bench", "consolidation", "--quick", "--out", out, *args)
    assert code == 2
    assert option in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not out.exists()


def test_the_cli_sweeps_and_writes_its_files(run_main, tmp_path: Path) -> None:
    code, stdout, stderr = run_main("bench", "consolidation", "--quick", "--sweep", "tasks", "--tasks", "2,3",
                                    "--width", "8", "--methods", "sft,replay", "--out", tmp_path)
    assert code == 0, stderr
    results = json.loads((tmp_path / "consolidation_tasks.json").read_text())
    assert [p["tasks"] for p in results["domains"]["vision"]["points"]] == [2, 3]
    assert list(results["methods"]) == ["sft", "replay"] and results["seeds"] == [0]
    assert (tmp_path / "consolidation_tasks.md").exists() and (tmp_path / "tasks_vision.png").exists()
    assert "tasks 3" in stdout


def test_a_sweeps_rate_trains_every_run_and_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    rates: list[float] = []
    real = sweep.run_stream

    def spy(scenario, spec, options, seed, on_task=None):
        rates.append(scenario.train.lr)
        return real(scenario, spec, options, seed, on_task)
    monkeypatch.setattr(sweep, "run_stream", spy)
    results = sweep.run_sweep("width", "control", widths=[8], methods=["sft"], seeds=1, quick=True, lr=7e-4)
    point, = results["domains"]["control"]["points"]
    assert rates == [7e-4] and point["lr"] == 7e-4
    assert "(4 tasks, lr 0.0007)" in sweep.markdown(results)
    rates.clear()
    results = sweep.run_sweep("width", "control", widths=[8], methods=["sft"], seeds=1, quick=True)
    assert rates == [3e-3] and results["domains"]["control"]["points"][0]["lr"] is None
