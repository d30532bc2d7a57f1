"""The stream loop: for each skill, learn it, then evaluate every skill of the stream and every probe.

It owns the loop, the progress bars, the seeds and the timing, and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from retain.data.skills import Skill
from retain.evaluate.evaluation import accuracies
from retain.evaluate.metrics import summarize
from retain.methods.registry import parse_method
from retain.models.causal_lm import CausalLMAdapter, load_adapter
from retain.seeding import seed_everything
from retain.train.loop import TrainConfig, train_task


@dataclass
class StreamResult:
    """What one method did on one stream: R[i][j] on stream skills and probes, row 0 before training."""

    method: str
    seed: int
    skills: list[str]
    probes: list[str]
    matrix: list[list[float]]
    probe_matrix: list[list[float]]
    train_seconds: list[float]
    extra_memory_bytes: int
    summary: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def progress_bar(quiet: bool = False) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), disable=quiet, transient=False)


def run_stream(model: str, stream: list[Skill], probes: list[Skill], method: str, *,
               options: dict[str, dict[str, Any]] | None = None, train: TrainConfig | None = None,
               seed: int = 0, lora: bool = False, progress: Progress | None = None,
               adapter: CausalLMAdapter | None = None) -> tuple[StreamResult, CausalLMAdapter]:
    """Learn ``stream`` one skill after another with ``method`` and record the accuracy matrices."""
    train = train or TrainConfig()
    objective, plugins = parse_method(method, options)
    seed_everything(seed)
    adapter = adapter or load_adapter(model, lora=lora)
    own_progress = progress is None
    progress = progress or progress_bar()
    if own_progress:
        progress.start()

    def evaluate() -> tuple[list[float], list[float]]:
        task = progress.add_task(f"  {method}: evaluating", total=None, info="")
        row = accuracies(adapter, stream)
        probe_row = accuracies(adapter, probes)
        progress.remove_task(task)
        return [row[s.name] for s in stream], [probe_row[p.name] for p in probes]

    matrix, probe_matrix, seconds = [], [], []
    try:
        row, probe_row = evaluate()
        matrix.append(row)
        probe_matrix.append(probe_row)
        for index, skill in enumerate(stream):
            cfg = TrainConfig(**{**asdict(train), "seed": seed * 1000 + index})
            task = progress.add_task(f"  {method}: learning {skill.name} ({index + 1}/{len(stream)})", total=1, info="")

            def on_step(step: int, total: int, loss: float, task=task) -> None:
                progress.update(task, completed=step, total=total, info=f"loss {loss:.3f}")

            start = time.perf_counter()
            train_task(adapter, objective, plugins, skill.train, cfg, on_step=on_step)
            seconds.append(time.perf_counter() - start)
            row, probe_row = evaluate()
            matrix.append(row)
            probe_matrix.append(probe_row)
            progress.update(task, info=f"{skill.name} {row[index]:.0%}, probes {sum(probe_row) / max(1, len(probe_row)):.0%}")
    finally:
        if own_progress:
            progress.stop()
    memory = objective.memory_bytes() + sum(p.memory_bytes() for p in plugins)
    result = StreamResult(method=method, seed=seed, skills=[s.name for s in stream], probes=[p.name for p in probes],
                          matrix=matrix, probe_matrix=probe_matrix, train_seconds=seconds,
                          extra_memory_bytes=memory)
    result.summary = stream_summary(result)
    return result, adapter


def stream_summary(result: StreamResult) -> dict[str, float]:
    """The demo's headline numbers: new-skill accuracy, prior-skill retention, ACC, BWT, forgetting."""
    m = summarize(result.matrix)
    before = result.probe_matrix[0]
    after = result.probe_matrix[-1]
    retained = [a / b for a, b in zip(after, before) if b > 0]
    diag = [result.matrix[i + 1][i] for i in range(len(result.skills))]
    return {
        "new_skill_accuracy": sum(diag) / len(diag),
        "acc": m["acc"],
        "bwt": m["bwt"],
        "forgetting": m["forgetting"],
        "prior_accuracy_before": sum(before) / len(before),
        "prior_accuracy_after": sum(after) / len(after),
        "prior_retention": sum(retained) / max(1, len(retained)),
        "train_seconds": sum(result.train_seconds),
    }
