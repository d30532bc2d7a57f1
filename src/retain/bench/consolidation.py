"""``retain bench consolidation``: every consolidation method on every vision, control and language stream.

For each scenario, method and seed the stream is learned task by task through :func:`retain.run.run` and
every task is scored before training and after each task, giving the accuracy matrix R (row 0: before any
training). The table reports ACC, BWT, forgetting and mean retention of the earlier tasks
(``retain.evaluate.metrics``), training time relative to naive fine-tuning (``sft``) on the same seed, and
the bytes each method holds beyond the model, as mean +- std over seeds.

Hyperparameters were chosen on the validation split (``split="val"``; ``GRID`` below, procedure in
``benchmarks/consolidation.py --tune``) at the default widths and are reported on the test split, never tuned on
it. ``width`` sets the hidden width of the vision MLP and the control policy (both layers; default: the domains'
``HIDDEN``, the published tables'), ``tasks`` the length of Permuted-Digits (default 5); both are recorded in the
results. Curves against width and task count, tuned per point, are :mod:`retain.bench.consolidation_sweep`'s.

The language domain is ``retain demo``'s skill stream on the embedded model with SFT and SDFT under each
consolidation method (``retain.bench.language_tuning``, which also holds its tuning); its runs also carry the
retention of the prior skills the model had before the stream (``prior_retention``).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from retain.bench import language_tuning
from retain.domains import control_cartpole, vision_digits
from retain.domains.language import demo_skills
from retain.errors import RetainError, check
from retain.evaluate import metrics
from retain.recipe import ModelSpec, Recipe
from retain.report.plots_consolidation import plot_all
from retain.report.runs_report import write_bench_report
from retain.run import run
from retain.scenario import Scenario

# label -> method spec; "sft" is naive fine-tuning, the baseline every ratio is taken against
METHODS: dict[str, str] = {
    "sft": "sft",
    "ewc": "sft+ewc",
    "online-ewc": "sft+ewc",
    "kfac": "sft+kfac",
    "si": "sft+si",
    "mas": "sft+mas",
    "l2": "sft+l2",
    "replay": "sft+replay",
    "ewc+replay": "sft+ewc+replay",
    "joint": "sft+joint",
}
# Method options per scenario, the best validation ACC of a grid (benchmarks/consolidation.py --tune);
# replay's size is a fixed memory budget, not tuned.
OPTIONS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "split-task": {"ewc": {"ewc": {"lam": 1e3}}, "online-ewc": {"ewc": {"lam": 1e2, "mode": "online"}},
                   "kfac": {"kfac": {"lam": 10.0}}, "si": {"si": {"c": 100.0}}, "mas": {"mas": {"lam": 0.1}},
                   "l2": {"l2": {"lam": 0.01}}, "ewc+replay": {"ewc": {"lam": 1e2}}},
    "split-class": {"ewc": {"ewc": {"lam": 1e5}}, "online-ewc": {"ewc": {"lam": 1e4, "mode": "online"}},
                    "kfac": {"kfac": {"lam": 1e3}}, "si": {"si": {"c": 1.0}}, "mas": {"mas": {"lam": 1.0}},
                    "l2": {"l2": {"lam": 100.0}}, "ewc+replay": {"ewc": {"lam": 10.0}}},
    "permuted": {"ewc": {"ewc": {"lam": 10.0}}, "online-ewc": {"ewc": {"lam": 1e2, "mode": "online"}},
                 "kfac": {"kfac": {"lam": 10.0}}, "si": {"si": {"c": 10.0}}, "mas": {"mas": {"lam": 0.1}},
                 "l2": {"l2": {"lam": 0.1}}, "ewc+replay": {"ewc": {"lam": 10.0}}},
    "cartpole-views": {"ewc": {"ewc": {"lam": 1e3}}, "online-ewc": {"ewc": {"lam": 1e3, "mode": "online"}},
                       "kfac": {"kfac": {"lam": 1e3}}, "si": {"si": {"c": 1.0}}, "mas": {"mas": {"lam": 100.0}},
                       "l2": {"l2": {"lam": 0.01}}, "ewc+replay": {"ewc": {"lam": 1e2}}},
}
# label -> (method, option, values) searched on the validation split; replay's size is a memory budget we fix,
# not a knob we tune
GRID: dict[str, tuple[str, str, list[float]]] = {
    "ewc": ("ewc", "lam", [10.0, 100.0, 1000.0, 10000.0, 100000.0]),
    "online-ewc": ("ewc", "lam", [10.0, 100.0, 1000.0, 10000.0, 100000.0]),
    "si": ("si", "c", [0.1, 1.0, 10.0, 100.0]),
    "mas": ("mas", "lam", [0.1, 1.0, 10.0, 100.0, 1000.0]),
    "l2": ("l2", "lam", [0.01, 0.1, 1.0, 10.0, 100.0]),
    "ewc+replay": ("ewc", "lam", [10.0, 100.0, 1000.0, 10000.0, 100000.0]),
    "kfac": ("kfac", "lam", [1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]),
}
REPLAY_SIZE = 200


def _vision(split: str, seed: int, quick: bool, width: int | None = None, tasks: int | None = None) -> list[Scenario]:
    return vision_digits.scenarios(split, quick=quick, width=width, tasks=tasks or vision_digits.PERMUTED_TASKS)


def _control(split: str, seed: int, quick: bool, width: int | None = None, tasks: int | None = None) -> list[Scenario]:
    return control_cartpole.scenarios(split, seed=seed, quick=quick, width=width)


# domain -> scenarios(split, seed, quick, width=None, tasks=None); ``tasks`` is Permuted-Digits' length
DOMAINS: dict[str, Callable[..., list[Scenario]]] = {"vision": _vision, "control": _control}
# the hidden layers a domain's model has at ``width`` (None: its default)
HIDDEN: dict[str, Callable[[int | None], tuple[int, ...]]] = {"vision": vision_digits.hidden,
                                                             "control": control_cartpole.hidden}
# methods whose config has a ``seed``: each run seeds them from its own seed
SEEDED = ("ewc", "mas", "replay", "kfac")
LANGUAGE = "language"
ALL_DOMAINS = (*DOMAINS, LANGUAGE)


def method_options(scenario: str, label: str, seed: int, spec: str | None = None) -> dict[str, dict[str, Any]]:
    """The options of ``label`` (spec ``spec``, default ``METHODS[label]``) on ``scenario``, with every seeded
    method seeded from the run's seed."""
    options = {name: dict(opts) for name, opts in OPTIONS.get(scenario, {}).get(label, {}).items()}
    for name in (spec or METHODS[label]).split("+"):
        if name == "replay":
            options.setdefault(name, {}).setdefault("size", REPLAY_SIZE)
        if name in SEEDED:
            options.setdefault(name, {}).setdefault("seed", seed)
    return options


def run_stream(scenario: Scenario, spec: str, options: dict[str, dict[str, Any]], seed: int,
               on_task: Callable[[], None] | None = None) -> dict[str, Any]:
    """Learn ``scenario`` with ``spec`` through :func:`retain.run.run`; return R, training seconds and the bytes
    the methods hold."""
    recipe = Recipe(model=ModelSpec(path=f"{scenario.domain}:{scenario.name}"), method=spec, options=options,
                    train=replace(scenario.train, seed=seed), seed=seed)
    result = run(scenario, recipe, quiet=True, on_task=(lambda index, partial: on_task()) if on_task else None)
    return {"seed": seed, "R": result.matrix, "seconds": sum(result.train_seconds),
            "memory_bytes": result.extra_memory_bytes, "metrics": metrics.summarize(result.matrix)}


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and population spread of the finite values (nan when there are none)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": statistics.fmean(finite), "std": statistics.pstdev(finite) if len(finite) > 1 else 0.0}


def summarize_runs(runs: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and std over seeds of every metric the runs carry, the time ratio to ``baseline`` (same seed) and
    memory."""
    summary = {name: mean_std([r["metrics"][name] for r in runs]) for name in runs[0]["metrics"]}
    base = {r["seed"]: r["seconds"] for r in baseline}
    summary["time_ratio"] = mean_std([r["seconds"] / base[r["seed"]] for r in runs if base.get(r["seed"])])
    summary["memory_bytes"] = mean_std([float(r["memory_bytes"]) for r in runs])
    return summary


def domain_methods(domain: str) -> dict[str, str]:
    """Label -> method spec of the methods ``domain`` runs."""
    return language_tuning.METHODS if domain == LANGUAGE else METHODS


def chosen_methods(domain: str, methods: list[str] | None) -> list[str]:
    """The labels ``domain`` runs: those of ``methods`` it knows, else all of its own."""
    return [m for m in methods if m in domain_methods(domain)] if methods is not None else list(domain_methods(domain))


def validate(domain: str, seeds: int, split: str, methods: list[str] | None, width: int | None = None,
             tasks: int | None = None) -> list[str]:
    """Check the benchmark's arguments before anything runs or is written; return the domains to run."""
    check(domain in (*ALL_DOMAINS, "all"), f"must be one of {', '.join((*ALL_DOMAINS, 'all'))}, got {domain!r}",
          field="domain")
    check(seeds >= 1, f"must be >= 1, got {seeds}", field="seeds")
    check(width is None or width >= 1, f"must be >= 1, got {width}", field="width")
    check(tasks is None or tasks >= 2, f"must be >= 2, got {tasks}", field="tasks")
    check(split in ("val", "test"), f"must be val or test, got {split!r}", field="split")
    domains = list(ALL_DOMAINS) if domain == "all" else [domain]
    if methods is not None:
        known = {label: None for d in domains for label in domain_methods(d)}
        for label in methods:
            if label not in known:
                raise RetainError(f"unknown method {label!r} (known: {', '.join(known)})", field="methods")
        check("sft" in methods, "sft must be included: every time ratio is taken against it", field="methods")
    return domains


def run_benchmark(domain: str = "all", seeds: int = 3, *, quick: bool = False, split: str = "test",
                  methods: list[str] | None = None,
                  progress: Callable[[int], Callable[[str], Callable[[], None]]] | None = None,
                  width: int | None = None, tasks: int | None = None) -> dict[str, Any]:
    """Run every method on every scenario of ``domain`` for ``seeds`` seeds; return the results document.

    ``width``: the hidden width of the vision and control models (default: each domain's own); ``tasks``:
    Permuted-Digits' length (default 5). ``progress(total_tasks)`` returns ``describe(label)``, which returns
    the per-task callback (the CLI's progress bar); the library itself draws nothing.
    """
    domains = validate(domain, seeds, split, methods, width, tasks)
    with one_thread():
        return _run(domains, seeds, quick, split, methods, progress, width, tasks)


class one_thread:
    """Torch on one intra-op thread inside the block: these models are tiny, and one thread is several times
    faster than two that wait on each other."""

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.threads)


def _run(domains: list[str], seeds: int, quick: bool, split: str, methods: list[str] | None,
         progress: Callable[[int], Callable[[str], Callable[[], None]]] | None, width: int | None = None,
         tasks: int | None = None) -> dict[str, Any]:
    labels = {name: chosen_methods(name, methods) for name in domains}
    first = {name: DOMAINS[name](split, 0, quick, width, tasks) for name in domains if name != LANGUAGE}
    total = sum(len(sc.tasks) * len(labels[name]) for name, scs in first.items() for sc in scs) * seeds
    if LANGUAGE in domains:
        stream, _ = demo_skills(language_tuning.budget(quick), 0, split)
        total += len(stream) * len(labels[LANGUAGE]) * seeds
    describe = progress(total) if progress is not None else None
    results: dict[str, Any] = {"benchmark": "consolidation", "split": split, "quick": quick,
                               "seeds": list(range(seeds)),
                               "methods": {m: domain_methods(d)[m] for d in domains for m in labels[d]},
                               "hidden": {d: list(HIDDEN[d](width)) for d in domains if d in HIDDEN},
                               "domains": {}}
    if "vision" in domains:
        results["permuted_tasks"] = tasks or vision_digits.PERMUTED_TASKS
    if width is not None or (tasks or vision_digits.PERMUTED_TASKS) != vision_digits.PERMUTED_TASKS:
        results["notes"] = ("method options are OPTIONS, tuned on the validation split at the default widths and "
                            "5 permutations; the sweeps (retain bench consolidation --sweep) tune per point")
    for name in domains:
        if name == LANGUAGE:
            results["domains"][name] = _run_language(seeds, quick, split, labels[name], describe)
            continue
        methods_here = labels[name]
        entries: dict[str, Any] = {}
        for seed in range(seeds):
            # control draws fresh demonstrations per seed; vision's data split is fixed
            for sc in first[name] if seed == 0 else DOMAINS[name](split, seed, quick, width, tasks):
                entry = entries.setdefault(sc.name, {"kind": sc.kind, "tasks": [t.name for t in sc.tasks],
                                                     "methods": {}})
                for label in methods_here:
                    callback = describe(f"{name} {sc.name} {label} seed {seed}") if describe else None
                    run = run_stream(sc, METHODS[label], method_options(sc.name, label, seed), seed, callback)
                    method = entry["methods"].setdefault(label, {"spec": METHODS[label],
                                                                 "options": method_options(sc.name, label, 0),
                                                                 "runs": []})
                    method["runs"].append(run)
        _summarize(entries)
        results["domains"][name] = entries
    return results


def _summarize(entries: dict[str, Any]) -> None:
    for entry in entries.values():
        for method in entry["methods"].values():
            method["summary"] = summarize_runs(method["runs"], entry["methods"]["sft"]["runs"])


def _run_language(seeds: int, quick: bool, split: str, labels: list[str],
                  describe: Callable[[str], Callable[[], None]] | None) -> dict[str, Any]:
    """The demo's stream (one scenario) with every label; the progress bar moves once per finished run."""
    cfg = language_tuning.budget(quick)
    stream, probes = demo_skills(cfg, 0, split)
    budget = (f"{'quick ' if quick else ''}demo budget: {cfg.n_train} examples x {cfg.epochs} epochs per skill, "
              f"{cfg.n_test} test")
    entry: dict[str, Any] = {"kind": "new skills + prior-skill probes", "tasks": [s.name for s in stream],
                             "probes": [p.name for p in probes], "budget": budget, "methods": {}}
    for seed in range(seeds):
        for label in labels:
            callback = describe(f"language {label} seed {seed}") if describe else None
            outcome = language_tuning.run(label, seed, quick=quick, split=split)
            method = entry["methods"].setdefault(label, {
                "spec": language_tuning.METHODS[label],
                "options": language_tuning.method_options(label, 0), "lr": language_tuning.lr(label),
                "runs": []})
            method["runs"].append(outcome)
            if callback is not None:
                for _ in stream:
                    callback()
    entries = {"demo-stream": entry}
    _summarize(entries)
    return entries


def json_safe(value: Any) -> Any:
    """``nan`` (an undefined metric) as JSON ``null``: strict JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def write_results(results: dict[str, Any], out: Path) -> list[Path]:
    """Write ``consolidation.json`` (undefined metrics as null) and the plots into ``out``; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "consolidation.json"
    path.write_text(json.dumps(json_safe(results), indent=2, allow_nan=False) + "\n")
    return [path, *plot_all(results, out), write_bench_report(results, out)]
