"""``retain bench consolidation --sweep width|tasks``: retention and ACC against model width and stream length.

- ``width``: Permuted-Digits (5 tasks) and the CartPole views at several hidden widths of the vision MLP and the
  policy (both layers), for naive fine-tuning (``sft``), online EWC, SI, Kronecker-factored Laplace (``kfac``,
  when its plugin is registered) and replay. Wider networks forget less (Mirzadeh et al., "Wide Neural Networks
  Forget Less Catastrophically", ICML 2022).
- ``tasks``: Permuted-Digits with 5, 10 and 20 permutations at one width (the vision default), so each method's
  decline with the number of tasks shows (Ritter et al. 2018 report 50 permuted MNIST tasks).

At every point each regulariser's strength is chosen on the validation split by the best mean validation ACC
over the tuning seeds (``GRID`` of :mod:`retain.bench.consolidation`; ties go to the earlier value), then the
chosen options are run on the test split for every seed; sft and replay (a fixed memory budget) have nothing to
tune. Tuning uses the same seeds as the test runs up to ``FULL_TUNING_UP_TO`` hidden units and seed 0 alone
above it (the wide models' Fisher estimates cost minutes per run on one CPU core); every point records its
tuning seeds. Every finished run is appended to ``runs.jsonl`` in the output folder, so ``resume`` reuses them
(to add a method to a finished sweep, say) instead of training again.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from retain.bench.consolidation import GRID, json_safe, mean_std, method_options, one_thread, run_stream
from retain.domains import control_cartpole, vision_digits
from retain.errors import RetainError, check
from retain.evaluate.metrics import mean_std_text
from retain.report.plots_consolidation_sweep import plot_sweep
from retain.scenario import Scenario

SWEEPS = ("width", "tasks")
# label -> method spec, in the order of every table and legend
SWEEP_METHODS: dict[str, str] = {"sft": "sft", "online-ewc": "sft+ewc", "si": "sft+si", "kfac": "sft+kfac",
                                 "replay": "sft+replay"}
WIDTHS: dict[str, list[int]] = {"vision": [64, 128, 256, 512], "control": [32, 64, 128, 256, 512]}
TASK_COUNTS = [5, 10, 20]
FULL_TUNING_UP_TO = 256
SCENARIO = {"vision": "permuted", "control": "cartpole-views"}
DEFAULT_WIDTH = {"vision": vision_digits.HIDDEN[0], "control": control_cartpole.HIDDEN[0]}
METRICS = ("acc", "retention", "bwt", "forgetting")
RUNS_FILE = "runs.jsonl"


@dataclass(frozen=True)
class Point:
    """One point of a curve: a domain's scenario at a hidden width (and, in vision, a number of permutations)."""

    domain: str
    width: int
    tasks: int | None = None
    # the learning rate of every method at this point (None: the domain's own, 1e-3 vision, 3e-3 control)
    lr: float | None = None

    @property
    def name(self) -> str:
        return (f"{self.domain} width {self.width}" + (f" {self.tasks} tasks" if self.tasks else "")
                + (f" lr {self.lr:g}" if self.lr is not None else ""))

    def scenario(self, split: str, seed: int, quick: bool) -> Scenario:
        """The scenario at this point; control's demonstrations depend on ``seed``, vision's data does not."""
        if self.domain == "vision":
            scenario = vision_digits.permuted_digits(split, vision_digits.train_configs(quick)[1],
                                                     tasks=self.tasks or vision_digits.PERMUTED_TASKS,
                                                     layers=(self.width, self.width))
        else:
            scenario = control_cartpole.scenarios(split, seed=seed, quick=quick, width=self.width)[0]
        if self.lr is None:
            return scenario
        return replace(scenario, train=replace(scenario.train, lr=self.lr))

    def task_count(self) -> int:
        if self.domain == "vision":
            return self.tasks or vision_digits.PERMUTED_TASKS
        return len(control_cartpole.VIEWS)


def available_methods() -> list[str]:
    """The sweep's labels whose methods are registered (``kfac`` once its plugin is)."""
    from retain.methods.registry import CONSOLIDATIONS, OBJECTIVES

    known = {*CONSOLIDATIONS, *OBJECTIVES}
    return [label for label, spec in SWEEP_METHODS.items() if all(name in known for name in spec.split("+"))]


def points(sweep: str, domains: list[str], widths: list[int] | None, task_counts: list[int] | None,
           width: int | None) -> list[Point]:
    """The points of ``sweep`` in the order they run."""
    if sweep == "width":
        return [Point(d, w, vision_digits.PERMUTED_TASKS if d == "vision" else None)
                for d in domains for w in (widths or WIDTHS[d])]
    return [Point("vision", width or DEFAULT_WIDTH["vision"], n) for n in (task_counts or TASK_COUNTS)]


def validate_sweep(sweep: str, domain: str, *, widths: list[int] | None = None, task_counts: list[int] | None = None,
                   width: int | None = None, methods: list[str] | None = None, seeds: int = 3,
                   tune_seeds: int | None = None, grid: dict[str, tuple[str, str, list[float]]] | None = None
                   ) -> list[Point]:
    """Check a sweep's arguments before anything runs or is written; return its points."""
    check(sweep in SWEEPS, f"must be one of {', '.join(SWEEPS)}, got {sweep!r}", field="sweep")
    allowed = ("vision", "control", "all") if sweep == "width" else ("vision", "all")
    check(domain in allowed, f"the {sweep} sweep runs {' or '.join(allowed)}, got {domain!r}", field="domain")
    check(seeds >= 1, f"must be >= 1, got {seeds}", field="seeds")
    check(tune_seeds is None or tune_seeds >= 1, f"must be >= 1, got {tune_seeds}", field="tune_seeds")
    for value in [*(widths or []), *([width] if width is not None else [])]:
        check(value >= 1, f"must be >= 1, got {value}", field="width")
    for value in task_counts or []:
        check(value >= 2, f"must be >= 2, got {value}", field="tasks")
    check(sweep == "tasks" or width is None, "the width sweep takes its widths as a list (widths=...)",
          field="width")
    check(sweep == "width" or widths is None, "the tasks sweep runs one width (width=...)", field="width")
    check(sweep == "tasks" or task_counts is None, "the width sweep runs Permuted-Digits with 5 tasks",
          field="tasks")
    known = available_methods()
    for label in methods or []:
        if label not in known:
            raise RetainError(f"unknown method {label!r} (known: {', '.join(known)})", field="methods")
    for label, entry in (grid or {}).items():
        check(len(entry) == 3 and len(entry[2]) >= 1, f"{label}: needs (method, option, [values])", field="grid")
    domains = ["vision", "control"] if domain == "all" and sweep == "width" else ["vision"] if sweep == "tasks" \
        else [domain]
    return points(sweep, domains, widths, task_counts, width)


def options(point: Point, label: str, seed: int, value: float | None,
            grid: dict[str, tuple[str, str, list[float]]]) -> dict[str, dict[str, Any]]:
    """``label``'s options at ``point`` for ``seed``: the benchmark's (online EWC's mode, replay's size, the
    methods' seeds) with the grid's option set to ``value``."""
    found = method_options(SCENARIO[point.domain], label, seed, SWEEP_METHODS[label])
    if value is not None:
        method, key, _ = grid[label]
        found.setdefault(method, {})[key] = value
    return found


class Runs:
    """The finished runs, by what defines them, kept in ``runs.jsonl`` (when a folder is given) as they finish."""

    def __init__(self, folder: Path | None, resume: bool) -> None:
        self.path = folder / RUNS_FILE if folder is not None else None
        self.done: dict[str, dict[str, Any]] = {}
        if self.path is not None and resume and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.done[record["key"]] = record
        elif self.path is not None and self.path.exists():
            self.path.unlink()

    @staticmethod
    def key(point: Point, label: str, opts: dict[str, Any], split: str, seed: int, quick: bool) -> str:
        # a run at the domain's own rate keeps the key it had before the rate was a sweep option
        rate = [point.lr] if point.lr is not None else []
        return json.dumps([point.domain, point.width, point.task_count(), SWEEP_METHODS[label], opts, split, seed,
                           quick, *rate], sort_keys=True)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.done.get(key)

    def add(self, key: str, record: dict[str, Any]) -> None:
        self.done[key] = record
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(json.dumps(json_safe({"key": key, **record}), allow_nan=False) + "\n")


def choose(scores: dict[float, float]) -> float:
    """The value with the best mean validation ACC; a tie goes to the earlier value."""
    best = None
    for value, acc in scores.items():
        if best is None or acc > scores[best]:
            best = value
    assert best is not None
    return best


def tuning_seeds(point: Point, seeds: int, tune_seeds: int | None) -> int:
    """How many seeds tune ``point``: ``tune_seeds``, else all up to ``FULL_TUNING_UP_TO`` units and 1 above."""
    if tune_seeds is not None:
        return tune_seeds
    return seeds if point.width <= FULL_TUNING_UP_TO else 1


def run_sweep(sweep: str, domain: str = "all", *, widths: list[int] | None = None,
              task_counts: list[int] | None = None, width: int | None = None, methods: list[str] | None = None,
              seeds: int = 3, tune_seeds: int | None = None, quick: bool = False,
              grid: dict[str, tuple[str, str, list[float]]] | None = None, out: Path | None = None,
              resume: bool = False, progress: Callable[[int], Callable[[str], Callable[[], None]]] | None = None,
              lr: float | None = None) -> dict[str, Any]:
    """Tune every regulariser per point on the validation split, run the chosen options on the test split for
    ``seeds`` seeds; return the results document. ``out``: where ``runs.jsonl`` grows (``resume``: reuse it).
    ``lr``: every method's learning rate (default: the domain's; wider models may want a lower one).
    ``progress`` as :func:`retain.bench.consolidation.run_benchmark`'s."""
    grid = {**GRID, **(grid or {})}
    chosen_points = validate_sweep(sweep, domain, widths=widths, task_counts=task_counts, width=width,
                                   methods=methods, seeds=seeds, tune_seeds=tune_seeds, grid=grid)
    check(lr is None or (math.isfinite(lr) and lr > 0), f"must be a positive number, got {lr}", field="lr")
    chosen_points = [replace(point, lr=lr) for point in chosen_points]
    labels = [m for m in available_methods() if methods is None or m in methods]
    with one_thread():
        return _run(sweep, chosen_points, labels, seeds, tune_seeds, quick, grid, Runs(out, resume), progress)


def _run(sweep: str, chosen_points: list[Point], labels: list[str], seeds: int, tune_seeds: int | None,
         quick: bool, grid: dict[str, tuple[str, str, list[float]]], runs: Runs,
         progress: Callable[[int], Callable[[str], Callable[[], None]]] | None) -> dict[str, Any]:
    total = 0
    for point in chosen_points:
        tuned = sum(len(grid[label][2]) for label in labels if label in grid)
        total += point.task_count() * (tuned * tuning_seeds(point, seeds, tune_seeds) + len(labels) * seeds)
    describe = progress(total) if progress is not None else None
    scenarios: dict[tuple[Point, str, int], Scenario] = {}

    def one(point: Point, label: str, split: str, seed: int, value: float | None) -> dict[str, Any]:
        opts = options(point, label, seed, value, grid)
        key = Runs.key(point, label, opts, split, seed, quick)
        callback = describe(f"{point.name} {label} {split} seed {seed}"
                            + (f" {grid[label][1]}={value:g}" if value is not None else "")) if describe else None
        found = runs.get(key)
        if found is None:
            if (point, split, seed) not in scenarios:
                scenarios.clear()  # one scenario's data at a time
                scenarios[(point, split, seed)] = point.scenario(split, seed, quick)
            found = run_stream(scenarios[(point, split, seed)], SWEEP_METHODS[label], opts, seed, callback)
            runs.add(key, found)
        elif callback is not None:
            for _ in range(point.task_count()):
                callback()
        return found

    results: dict[str, Any] = {
        "benchmark": "consolidation-sweep", "sweep": sweep, "quick": quick, "seeds": list(range(seeds)),
        "methods": {label: SWEEP_METHODS[label] for label in labels},
        "grid": {label: {"option": f"{grid[label][0]}.{grid[label][1]}", "values": grid[label][2]}
                 for label in labels if label in grid},
        "procedure": ("per point, each regulariser's option chosen by the best mean validation ACC over the tuning "
                      "seeds (ties: the earlier value), then run on the test split for every seed; mean and "
                      "population std over seeds"),
        "domains": {}}
    for point in chosen_points:
        tune_n = tuning_seeds(point, seeds, tune_seeds)
        entry = results["domains"].setdefault(point.domain, {
            "scenario": SCENARIO[point.domain], "x": sweep, "points": []})
        row: dict[str, Any] = {"width": point.width, "tasks": point.task_count(), "hidden": [point.width] * 2,
                               "lr": point.lr,  # None: the domain's own rate
                               "tune_seeds": list(range(tune_n)), "methods": {}}
        for label in labels:
            method: dict[str, Any] = {"spec": SWEEP_METHODS[label]}
            value = None
            if label in grid:
                name, key, values = grid[label]
                validation = []
                for v in values:
                    val_runs = [one(point, label, "val", seed, v)["metrics"] for seed in range(tune_n)]
                    validation.append({"value": v, "acc": statistics.fmean(r["acc"] for r in val_runs),
                                       "retention": statistics.fmean(r["retention"] for r in val_runs),
                                       "acc_by_seed": [r["acc"] for r in val_runs],
                                       "retention_by_seed": [r["retention"] for r in val_runs]})
                value = choose({item["value"]: item["acc"] for item in validation})
                method.update(option=f"{name}.{key}", chosen=value, validation=validation)
            method["options"] = options(point, label, 0, value, grid)
            test_runs = [one(point, label, "test", seed, value) for seed in range(seeds)]
            method["runs"] = [{"seed": r["seed"], "R": r["R"], "seconds": r["seconds"], "metrics": r["metrics"]}
                              for r in test_runs]
            method["summary"] = {m: mean_std([r["metrics"][m] for r in test_runs]) for m in METRICS}
            method["summary"]["seconds"] = mean_std([r["seconds"] for r in test_runs])
            row["methods"][label] = method
        entry["points"].append(row)
    notes = [f"hidden widths above {FULL_TUNING_UP_TO} are tuned on seed 0 only"] if any(
        tuning_seeds(p, seeds, tune_seeds) < seeds for p in chosen_points) else []
    if tune_seeds is not None:
        notes = [f"tuned on {tune_seeds} seed(s) at every point"]
    results["notes"] = notes
    return results


def markdown(results: dict[str, Any]) -> str:
    """The sweep as Markdown: per domain, retention and ACC per method and point, then the chosen options."""
    x = results["sweep"]
    seeds = len(results["seeds"])
    lines = [f"# Consolidation against {'hidden width' if x == 'width' else 'number of tasks'}", "",
             f"Test split, mean ± std over {seeds} seed(s); {results['procedure']}."]
    lines += [f"Note: {note}." for note in results["notes"]]
    for domain, entry in results["domains"].items():
        columns = [str(p[x]) for p in entry["points"]]
        head = "width" if x == "width" else "tasks"
        first = entry["points"][0]
        fixed = (f"{first['tasks']} tasks" if x == "width" else f"width {first['width']}") + (
            f", lr {first['lr']:g}" if first.get("lr") is not None else "")
        labels = list(entry["points"][0]["methods"])
        for metric, title in (("retention", "retention of earlier tasks"), ("acc", "ACC (final mean accuracy)")):
            lines += ["", f"## {domain} / {entry['scenario']} ({fixed}): {title}", "",
                      f"| method | {' | '.join(f'{head} {c}' for c in columns)} |",
                      "|---|" + "---:|" * len(columns)]
            for label in labels:
                cells = [mean_std_text(p["methods"][label]["summary"][metric]) for p in entry["points"]]
                lines.append(f"| {label} | {' | '.join(cells)} |")
        tuned = [label for label in labels if "chosen" in entry["points"][0]["methods"][label]]
        if tuned:
            lines += ["", f"## {domain}: chosen on validation (value, its mean validation ACC / retention; "
                          "tuning seeds)", "",
                      f"| method | {' | '.join(f'{head} {c}' for c in columns)} |", "|---|" + "---:|" * len(columns)]
            for label in tuned:
                cells = []
                for p in entry["points"]:
                    m = p["methods"][label]
                    best = next(v for v in m["validation"] if v["value"] == m["chosen"])
                    cells.append(f"{m['option']}={m['chosen']:g} ({best['acc']:.3f} / {best['retention']:.3f}; "
                                 f"{len(p['tune_seeds'])})")
                lines.append(f"| {label} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def write_sweep(results: dict[str, Any], out: Path) -> list[Path]:
    """Write ``consolidation_<sweep>.json``, ``.md`` and one PNG per domain into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"consolidation_{results['sweep']}"
    path = out / f"{stem}.json"
    path.write_text(json.dumps(json_safe(results), indent=1, allow_nan=False) + "\n")
    table = out / f"{stem}.md"
    table.write_text(markdown(results))
    return [path, table, *plot_sweep(results, out)]
