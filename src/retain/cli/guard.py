"""``retain guard scan DATA.jsonl --model M|HOME [--json]``: the poisoning screen (:mod:`retain.guard.screen`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(name="guard", no_args_is_help=True, help="Screen incoming data for poisoning.")


@app.command("scan")
def scan(data: Annotated[Path, typer.Argument(help="JSONL: prompt, demonstration, optional answer.")],
         model: Annotated[str, typer.Option("--model", help="`embedded`, a model folder, or a home (its champion "
                                                            "and suite).")] = "embedded",
         suite: Annotated[list[Path], typer.Option("--suite", help="JSONL of what the model must keep doing "
                                                                   "(default: the home's suite, or the embedded "
                                                                   "model's probes). Repeatable.")] = [],
         signals: Annotated[str, typer.Option("--signals", help="Comma-separated subset of trigger, contradiction, "
                                                                "duplicate, loss, teacher, consistency, rule, "
                                                                "analogy, spectral, clustering.")] = "",
         as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object: lines and summary.")] = False
         ) -> None:
    """Score every line for signs of poisoning; flagged lines are listed with their reasons."""
    from retain.guard.screen import scan_file
    from retain.guard.signals import SIGNALS
    from retain.home.versions import champion_loader, is_home

    only = tuple(s.strip() for s in signals.split(",") if s.strip()) or SIGNALS
    loader, prior = champion_loader(model) if is_home(model) else (model, None)
    report = scan_file(data, loader, list(suite), only, prior)
    if as_json:
        print(json.dumps(report.to_json()))
        return
    from rich.table import Table

    from retain.console import console as make

    console = make(highlight=False)
    summary = report.summary()
    console.print(f"{data}: {summary['flagged']} of {summary['lines']} lines flagged")
    table = Table()
    for column in ("signal", "lines flagged"):
        table.add_column(column)
    for name, count in summary["by_signal"].items():
        table.add_row(name, str(count))
    table.add_row("[bold]any (flagged)[/]", f"[bold]{summary['flagged']}[/]")
    console.print(table)
    if report.triggers:
        console.print("candidate triggers: " + ", ".join(f"{t!r} (lines {', '.join(map(str, i['lines']))})"
                                                          for t, i in report.triggers.items()))
    for line in report.flagged:
        for reason in line.reasons:
            console.print(f"{data}:{line.line}: score {line.score:.2f}: {reason}", soft_wrap=True)


def bench(seeds: int, quick: bool, out: Path, console: object, *, families: str = "", attacks: str = "",
          rates: str = "", train: str = "rotr", first_seed: int = 1, epochs: int = 0) -> None:
    """``retain bench guard``: run :mod:`retain.bench.guard`, print its table, write JSON and PNG."""
    from retain.bench.guard import run_and_write, table
    from retain.errors import RetainError

    def names(text: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in text.split(",") if s.strip())

    try:
        chosen_rates = tuple(float(r) for r in names(rates))
    except ValueError:
        raise RetainError(f"must be a comma list of numbers, got {rates!r}", field="--rates") from None
    trained = () if train.strip() == "none" else names(train)
    results, paths = run_and_write(seeds, quick, out, describe=console.log, families=names(families) or None,
                                   attacks=names(attacks) or None, rates=chosen_rates or None,
                                   train_families=None if quick else trained, first_seed=first_seed,
                                   epochs=epochs or None)
    console.print(table(results))
    for path in paths:
        console.print(f"wrote {path}")
