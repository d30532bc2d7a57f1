"""``retain bench consolidation``: the command, its progress bar and its tables; the work is in
``retain.bench.consolidation``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn
from rich.table import Table

from retain.bench.consolidation import METHODS, run_benchmark, validate, write_results
from retain.bench import language_tuning as language


def _cell(stat: dict[str, float], digits: int = 3) -> str:
    if math.isnan(stat["mean"]):
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _bytes(stat: dict[str, float]) -> str:
    value = stat["mean"]
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def tables(results: dict[str, Any]) -> list[Table]:
    """One table per domain and scenario: each method's metrics, time ratio and extra memory.

    Language adds the retention of the prior skills (the probes), which is what forgetting is about there.
    """
    out = []
    seeds = len(results["seeds"])
    for domain, scenarios in results["domains"].items():
        for name, entry in scenarios.items():
            budget = f", {entry['budget']}" if "budget" in entry else ""
            table = Table(title=f"{domain} / {name} ({entry['kind']}, {len(entry['tasks'])} tasks{budget}, "
                                f"{results['split']} split, mean ± std over {seeds} seeds)")
            prior = "probes" in entry
            columns = ["method", "ACC", "BWT", "forgetting", "retention", *(["prior kept"] if prior else []),
                       "time ×sft", "memory"]
            for column in columns:
                table.add_column(column, justify="left" if column == "method" else "right")
            for label, method in entry["methods"].items():
                s = method["summary"]
                table.add_row(label, _cell(s["acc"]), _cell(s["bwt"]), _cell(s["forgetting"]),
                              _cell(s["retention"]), *([_cell(s["prior_retention"])] if prior else []),
                              _cell(s["time_ratio"], 2), _bytes(s["memory_bytes"]))
            out.append(table)
    return out


def run_with_progress(domain: str, seeds: int | None, *, quick: bool, out: Path, split: str,
                      methods: list[str] | None, console: Console) -> list[Path]:
    """Run the benchmark with a progress bar, print the tables and write JSON and PNG into ``out``."""
    seeds = seeds if seeds is not None else (1 if quick else 3)
    validate(domain, seeds, split, methods)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task_id = bar.add_task("consolidation", total=None)

        def progress(total: int) -> Callable[[str], Callable[[], None]]:
            bar.update(task_id, total=total)

            def describe(label: str) -> Callable[[], None]:
                bar.update(task_id, description=label)
                return lambda: bar.advance(task_id)
            return describe

        results = run_benchmark(domain, seeds, quick=quick, split=split, methods=methods, progress=progress)
    for table in tables(results):
        console.print(table)
    written = write_results(results, out)
    for path in written:
        console.print(f"wrote {path}")
    return written


def make_console() -> Console:
    """A console for the tables; a log file or pipe gets 150 columns, not rich's 80 that wrap every cell."""
    console = Console()
    return console if console.is_terminal else Console(width=150)


def register(bench_app: typer.Typer) -> None:
    """Add ``consolidation`` to ``retain bench``."""

    @bench_app.command("consolidation")
    def consolidation(
        domain: str = typer.Option("all", "--domain", help="vision, control, language or all"),
        seeds: int | None = typer.Option(None, "--seeds", help="seeds per method (default 3, or 1 with --quick)"),
        quick: bool = typer.Option(False, "--quick", help="small budgets: a smoke test, not a result"),
        out: Path = typer.Option(Path("results/consolidation"), "--out", help="folder for JSON and PNG"),
        split: str = typer.Option("test", "--split", help="test to report; val to tune hyperparameters"),
        methods: str | None = typer.Option(
            None, "--methods", help=f"comma list of {', '.join(METHODS)} (vision, control) or "
                                    f"{', '.join(language.METHODS)} (language)"),
    ) -> None:
        """Every consolidation method on every vision, control and language stream, side by side."""
        chosen = [m.strip() for m in methods.split(",")] if methods else None
        run_with_progress(domain, seeds, quick=quick, out=out, split=split, methods=chosen, console=make_console())
