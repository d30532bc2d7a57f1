"""``run(scenario, recipe)``: the only training path. The demo, ``retain learn``, learning into a home and every
benchmark build a :class:`~retain.recipe.Recipe` and a :class:`~retain.scenario.Scenario` and call it.

For each task of the scenario: train it with the recipe's objective and consolidation plugins
(:func:`retain.train.loop.train_task`), then score every task and every probe. Row 0 of both matrices is the
score before any training. It owns the seeds, the timing and the progress bars, and nothing else.

Under ``accelerate launch`` or ``torchrun`` every process trains (each on its slice of every global batch);
only the main process draws progress and scores, so a run evaluates once and the other processes' matrices
hold NaN (what they trained is bit-identical to the main process's model).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retain.console import console
from retain.evaluate import metrics
from retain.recipe import Recipe
from retain.scenario import Scenario, Task
from retain.seeding import derived_seed, seed_everything
from retain.models.adapter import is_sharded
from retain.train.loop import process_state, train_task


@dataclass
class RunResult:
    """What one recipe did on one scenario: R[i][j] on tasks and probes (row 0 before training), seconds,
    memory the methods hold, and the summary metrics. ``adapter`` and ``plugins`` are the trained model and
    the consolidation plugins with their state (importance, anchors, buffers), not serialised."""

    scenario: str
    method: str
    seed: int
    tasks: list[str]
    probes: list[str]
    matrix: list[list[float]]
    probe_matrix: list[list[float]]
    train_seconds: list[float]
    extra_memory_bytes: int
    recipe: dict[str, Any]
    summary: dict[str, float] = field(default_factory=dict)
    token_fraction: list[float] = field(default_factory=list)
    adapter: Any = field(default=None, repr=False, compare=False)
    objective: Any = field(default=None, repr=False, compare=False)
    plugins: list[Any] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "method": self.method, "seed": self.seed, "tasks": self.tasks,
                "probes": self.probes, "matrix": self.matrix, "probe_matrix": self.probe_matrix,
                "train_seconds": self.train_seconds, "extra_memory_bytes": self.extra_memory_bytes,
                "recipe": self.recipe, "summary": self.summary, "token_fraction": self.token_fraction}


def progress_bar(quiet: bool = False) -> Progress:
    """The progress display every long command shares (rich; drawn on stderr's terminal, off when quiet)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), disable=quiet, transient=False,
                    console=console())


def _scores(items: list[Task], adapter: Any) -> list[float]:
    return [item.score(adapter) if item.score is not None else float("nan") for item in items]


def run(scenario: Scenario, recipe: Recipe, *, adapter: Any = None, progress: Progress | None = None,
        quiet: bool = False, on_task: Callable[[int, RunResult], None] | None = None,
        methods: tuple[Any, list[Any]] | None = None) -> RunResult:
    """Learn ``scenario``'s tasks in order with ``recipe``; return the accuracy matrices and the trained model.

    ``adapter`` continues an already loaded model (default: ``scenario.make_adapter(recipe)``); ``methods``
    continues an objective and plugins that already hold state (default: fresh ones from the recipe). Before
    the first task every plugin protects ``scenario.protect`` (what the model already knows).
    ``on_task(index, partial_result)`` is called after each task is learned and scored.
    """
    recipe.validate()
    seed_everything(recipe.seed)
    main = process_state(recipe.model.device).is_main_process
    quiet = quiet or not main
    objective, plugins = methods if methods is not None else recipe.methods()
    adapter = adapter if adapter is not None else scenario.make_adapter(recipe)
    own_progress = progress is None
    progress = progress or progress_bar(quiet)
    if own_progress:
        progress.start()
    result = RunResult(scenario=scenario.name, method=recipe.method, seed=recipe.seed,
                       tasks=[t.name for t in scenario.tasks], probes=[p.name for p in scenario.probes], matrix=[],
                       probe_matrix=[], train_seconds=[], extra_memory_bytes=0, recipe=recipe.to_dict(),
                       adapter=adapter, objective=objective, plugins=plugins)

    def evaluate() -> None:
        if not main and not is_sharded(adapter.model):  # a sharded model's forwards need every process
            result.matrix.append([float("nan")] * len(scenario.tasks))
            result.probe_matrix.append([float("nan")] * len(scenario.probes))
            return
        bar = progress.add_task(f"  {recipe.method}: evaluating", total=None, info="")
        result.matrix.append(_scores(scenario.tasks, adapter))
        result.probe_matrix.append(_scores(scenario.probes, adapter))
        progress.remove_task(bar)

    try:
        for task in scenario.tasks:
            objective.check_examples(adapter, task.train)
        if scenario.protect:
            bar = progress.add_task(f"  {recipe.method}: protecting {len(scenario.protect)} prior examples",
                                    total=None, info="")
            for plugin in plugins:
                plugin.protect(adapter, list(scenario.protect))
            progress.remove_task(bar)
        evaluate()
        for index, task in enumerate(scenario.tasks):
            cfg = replace(recipe.train, seed=derived_seed(recipe.seed, index))
            bar = progress.add_task(f"  {recipe.method}: learning {task.name} ({index + 1}/{len(scenario.tasks)})",
                                    total=1, info="")

            def on_step(step: int, total: int, loss: float, bar: Any = bar) -> None:
                progress.update(bar, completed=step, total=total, info=f"loss {loss:.3f}")

            counted = objective.token_stats()
            start = time.perf_counter()
            train_task(adapter, objective, plugins, task.train, cfg, on_step=on_step)
            result.train_seconds.append(time.perf_counter() - start)
            evaluate()
            row, probes = result.matrix[-1], result.probe_matrix[-1]
            info = f"{task.name} {row[index]:.0%}" if task.score is not None else task.name
            if probes:
                info += f", probes {sum(probes) / len(probes):.0%}"
            now = objective.token_stats()
            total, trained = now["total"] - counted["total"], now["trained"] - counted["trained"]
            if total:
                info += f", trained on {trained / total:.0%} of completion tokens"
                result.token_fraction.append(trained / total)
            progress.update(bar, info=info)
            if on_task is not None:
                on_task(index, result)
    finally:
        if own_progress:
            progress.stop()
    result.extra_memory_bytes = objective.memory_bytes() + sum(p.memory_bytes() for p in plugins)
    result.summary = summarize(result)
    return result


def summarize(result: RunResult) -> dict[str, float]:
    """The headline numbers: new-skill accuracy, ACC, BWT, FWT, forgetting, retention of the stream's tasks,
    prior-skill accuracy before and after and its retention (:func:`retain.evaluate.metrics.prior_retention`)."""
    R = result.matrix
    summary: dict[str, float] = {"train_seconds": sum(result.train_seconds)}
    if all(all(v == v for v in row) for row in R) and len(R) > 1:
        summary.update(metrics.summarize(R))
        summary["new_skill_accuracy"] = sum(R[i + 1][i] for i in range(len(result.tasks))) / len(result.tasks)
    if result.probes:
        before, after = result.probe_matrix[0], result.probe_matrix[-1]
        summary["prior_accuracy_before"] = sum(before) / len(before)
        summary["prior_accuracy_after"] = sum(after) / len(after)
        summary["prior_retention"] = metrics.prior_retention(before, after)
    return summary
