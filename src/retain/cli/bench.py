"""``retain bench speed`` and ``retain bench consolidation``: the commands, their progress bar and tables; the
work is in :mod:`retain.bench.speed` and :mod:`retain.bench.consolidation` (imported when a command runs, since
they load torch and every domain)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TYPE_CHECKING, Any, Callable, Optional

import typer
from typer.core import TyperCommand

from retain.cli import usage
from retain.errors import RetainError
from retain.evaluate.metrics import mean_std_text

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

app = typer.Typer(name="bench", no_args_is_help=True, help="The tables we publish.")


@app.command("speed")
def bench_speed(
    examples: Annotated[int, typer.Option(
        "--examples", callback=usage.number(minimum=1), help="Training examples per method.")] = 64,
    model: Annotated[str, typer.Option(
        "--model", help="`embedded`, a local causal LM folder or a cached hub id.")] = "embedded",
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Skill JSONL to train on (default: the demo's first skill).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", callback=usage.number(minimum=1))] = 16,
    max_new_tokens: Annotated[int, typer.Option(
        "--max-new-tokens", callback=usage.number(minimum=1), help="SDFT's rollout length.")] = 24,
    dtype: Annotated[str, typer.Option("--dtype", help="auto, bfloat16, float16 or float32.")] = "auto",
    lora: Annotated[bool, typer.Option("--lora")] = False,
    out: Annotated[Path, typer.Option("--out")] = Path("results/speed"),
) -> None:
    """Time per training example and peak memory for SFT and SDFT on one model, side by side."""
    from retain.bench.speed import SpeedSetup, run_speed
    from retain.recipe import DTYPES

    if dtype not in DTYPES:
        raise RetainError(f"must be one of {', '.join(DTYPES)}, got {dtype!r}", field="--dtype")
    run_speed(SpeedSetup(model=model, data=None if data is None else str(data), examples=examples,
                         batch_size=batch_size, max_new_tokens=max_new_tokens, lora=lora, dtype=dtype), out=out,
              console=make_console())


_cell = mean_std_text


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
    from rich.table import Table

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


class _Bar:
    """The rich progress bar of a long benchmark: ``progress(total)`` returns ``describe(label)``, which returns
    the per-task callback (the library's progress protocol)."""

    def __init__(self, console: Console, name: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=console, transient=True)
        self.task_id = self.bar.add_task(name, total=None)

    def __enter__(self) -> Callable[[int], Callable[[str], Callable[[], None]]]:
        self.bar.__enter__()

        def progress(total: int) -> Callable[[str], Callable[[], None]]:
            self.bar.update(self.task_id, total=total)

            def describe(label: str) -> Callable[[], None]:
                self.bar.update(self.task_id, description=label)
                return lambda: self.bar.advance(self.task_id)
            return describe
        return progress

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)


def run_with_progress(domain: str, seeds: int | None, *, quick: bool, out: Path, split: str,
                      methods: list[str] | None, console: Console, width: int | None = None,
                      tasks: int | None = None) -> list[Path]:
    """Run the benchmark with a progress bar, print the tables and write JSON and PNG into ``out``."""
    from retain.bench.consolidation import run_benchmark, validate, write_results

    seeds = seeds if seeds is not None else (1 if quick else 3)
    validate(domain, seeds, split, methods, width, tasks)
    with _Bar(console, "consolidation") as progress:
        results = run_benchmark(domain, seeds, quick=quick, split=split, methods=methods, progress=progress,
                                width=width, tasks=tasks)
    return _show(console, tables(results), lambda: write_results(results, out))


def _show(console: Console, shown: list[Table], write: Callable[[], list[Path]]) -> list[Path]:
    """Print the tables, then write the files and say where each went."""
    for table in shown:
        console.print(table)
    written = write()
    for path in written:
        console.print(f"wrote {path}")
    return written


def sweep_tables(results: dict[str, Any]) -> list[Table]:
    """One table per domain: ACC / retention of each method at each point, and the chosen strength."""
    from rich.table import Table

    out = []
    x = results["sweep"]
    for domain, entry in results["domains"].items():
        table = Table(title=f"{domain} / {entry['scenario']}: ACC / retention against {x} (test split, mean ± std "
                            f"over {len(results['seeds'])} seeds; chosen on validation)")
        table.add_column("method")
        for p in entry["points"]:
            table.add_column(f"{x} {p[x]}", justify="right")
        for label in entry["points"][0]["methods"]:
            cells = []
            for p in entry["points"]:
                m = p["methods"][label]
                s = m["summary"]
                cell = f"{_cell(s['acc'])} / {_cell(s['retention'])}"
                if "chosen" in m:
                    cell += f"\n{m['option']}={m['chosen']:g}"
                cells.append(cell)
            table.add_row(label, *cells)
        out.append(table)
    return out


def sweep_with_progress(sweep: str, domain: str, seeds: int | None, *, quick: bool, out: Path,
                        methods: list[str] | None, console: Console, widths: list[int] | None = None,
                        task_counts: list[int] | None = None, width: int | None = None,
                        tune_seeds: int | None = None, resume: bool = False, lr: float | None = None) -> list[Path]:
    """Run a sweep with a progress bar, print its tables and write JSON, Markdown and PNG into ``out``."""
    from retain.bench.consolidation_sweep import run_sweep, validate_sweep, write_sweep

    seeds = seeds if seeds is not None else (1 if quick else 3)
    validate_sweep(sweep, domain, widths=widths, task_counts=task_counts, width=width, methods=methods,
                   seeds=seeds, tune_seeds=tune_seeds)
    with _Bar(console, f"{sweep} sweep") as progress:
        results = run_sweep(sweep, domain, widths=widths, task_counts=task_counts, width=width, methods=methods,
                            seeds=seeds, tune_seeds=tune_seeds, quick=quick, out=out, resume=resume,
                            progress=progress, lr=lr)
    return _show(console, sweep_tables(results), lambda: write_sweep(results, out))


def make_console(stderr: bool = False) -> Console:
    """A console for the tables (:func:`retain.console.console`: a log file or pipe gets wide, unwrapped lines)."""
    from retain.console import console

    return console(stderr=stderr)


class _MethodsHelp(TyperCommand):
    """Fills in ``--methods``' help, the method names of each domain, only when the help is shown: the names
    live with the benchmark, whose import loads torch and every domain."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from retain.bench.consolidation import LANGUAGE, METHODS, domain_methods

        for param in self.params:
            if param.name == "methods":
                param.help = (f"comma list of {', '.join(METHODS)} (vision, control) or "
                              f"{', '.join(domain_methods(LANGUAGE))} (language)")
        super().format_help(ctx, formatter)


@app.command("consolidation", cls=_MethodsHelp)
def consolidation(
    domain: Annotated[str, typer.Option("--domain", help="vision, control, language or all")] = "all",
    seeds: Annotated[int | None, typer.Option(
        "--seeds", help="seeds per method (default 3, or 1 with --quick)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="small budgets: a smoke test, not a result")] = False,
    out: Annotated[Path, typer.Option("--out", help="folder for JSON and PNG")] = Path("results/consolidation"),
    split: Annotated[str | None, typer.Option(
        "--split", help="test to report; val to tune hyperparameters (not with --sweep)")] = None,
    methods: Annotated[str | None, typer.Option("--methods", help="comma list of method labels")] = None,
    width: Annotated[str | None, typer.Option(
        "--width", help="hidden width of the vision MLP and the control policy, both layers (default: each "
                        "domain's, 128 and 64); with --sweep width a comma list (default vision 64,128,256,512, "
                        "control 32,64,128,256,512)")] = None,
    tasks: Annotated[str | None, typer.Option(
        "--tasks", help="Permuted-Digits' number of tasks, >= 2 (default 5); with --sweep tasks a comma list "
                        "(default 5,10,20)")] = None,
    sweep: Annotated[str | None, typer.Option(
        "--sweep", help="width or tasks: retention and ACC against width or task count (sft, online-ewc, si, kfac, "
                        "replay; strengths chosen per point on validation, reported on test)")] = None,
    tune_seeds: Annotated[int | None, typer.Option(
        "--tune-seeds", help="with --sweep: seeds the validation search averages (default: --seeds up to width "
                             "256, 1 above)")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="with --sweep: reuse the finished runs of OUT/runs.jsonl")] = False,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", callback=usage.number(minimum=0, above=True),
        help="with --sweep: every method's learning rate (default: the domain's, 1e-3 vision, 3e-3 control; a "
             "wider model may want a lower one)")] = None,
) -> None:
    """Every consolidation method on every vision, control and language stream, side by side; or, with --sweep,
    curves against width or number of tasks."""
    chosen = [m.strip() for m in methods.split(",")] if methods else None
    widths = _ints(width, "--width", 1)
    counts = _ints(tasks, "--tasks", 2)
    console = make_console()
    if sweep is None:
        for option, given in (("--tune-seeds", tune_seeds is not None), ("--resume", resume), ("--lr", lr is not None)):
            if given:
                raise RetainError("only with --sweep width|tasks", field=option)
        for option, values in (("--width", widths), ("--tasks", counts)):
            if values is not None and len(values) != 1:
                raise RetainError(f"one value without --sweep, got {len(values)}", field=option)
        run_with_progress(domain, seeds, quick=quick, out=out, split=split or "test", methods=chosen,
                          console=console, width=widths[0] if widths else None, tasks=counts[0] if counts else None)
        return
    if sweep not in ("width", "tasks"):
        raise RetainError(f"must be width or tasks, got {sweep!r}", field="--sweep")
    if split is not None:
        raise RetainError("a sweep tunes on val and reports on test; leave --split out", field="--split")
    if tune_seeds is not None and tune_seeds < 1:
        raise RetainError(f"must be >= 1, got {tune_seeds}", field="--tune-seeds")
    if sweep == "width" and counts is not None:
        raise RetainError("the width sweep runs Permuted-Digits with 5 tasks; --tasks goes with --sweep tasks",
                          field="--tasks")
    if sweep == "tasks" and widths is not None and len(widths) != 1:
        raise RetainError(f"the tasks sweep runs one width, got {len(widths)}", field="--width")
    sweep_with_progress(sweep, domain, seeds, quick=quick, out=out, methods=chosen, console=console,
                        widths=widths if sweep == "width" else None, task_counts=counts,
                        width=widths[0] if sweep == "tasks" and widths else None, tune_seeds=tune_seeds,
                        resume=resume, lr=lr)


def _ints(text: str | None, option: str, minimum: int) -> list[int] | None:
    """A comma list of integers >= ``minimum`` (None when the option was not given)."""
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            value = int(part.strip())
        except ValueError:
            raise RetainError(f"must be an integer (or a comma list of them), got {part.strip()!r}",
                              field=option) from None
        if value < minimum:
            raise RetainError(f"must be >= {minimum}, got {value}", field=option)
        values.append(value)
    return values


@app.command("guard")
def guard(
    seeds: Annotated[int, typer.Option("--seeds", help="seeds from --first-seed on (1 with --quick)")] = 1,
    quick: Annotated[bool, typer.Option("--quick", help="rotr, 80 lines, 3 attacks at 10%: a smoke test")] = False,
    out: Annotated[Path, typer.Option("--out", help="folder for JSON and PNG")] = Path("results/guard"),
    families: Annotated[str, typer.Option("--families", help=(
        "comma list of skill families (default: the seven shipped; the other streams' outin, novow, flip, "
        "stutter, bookend, dblsort too)"))] = "",
    attacks: Annotated[str, typer.Option("--attacks", help="comma list of attack classes (default all)")] = "",
    rates: Annotated[str, typer.Option(
        "--rates", help="comma list of poisoning rates (default 0.01,0.03,0.05,0.1)")] = "",
    train: Annotated[str, typer.Option(
        "--train", help="families whose attacks are trained (attack success); 'none' for detection only")] = "rotr",
    first_seed: Annotated[int, typer.Option(
        "--first-seed", help="first seed (0 is the one thresholds were tuned on)")] = 1,
    epochs: Annotated[int, typer.Option("--epochs", help="training passes of the attack runs (default 12)")] = 0,
) -> None:
    """Attack classes (rare, natural, glued, two-word triggers; fixed and input-dependent payloads; flips and
    near misses): the screen's recall and false positives per family, attack success with and without the guard
    (the work is in retain.cli.guard.bench)."""
    from retain.cli.guard import bench

    bench(seeds, quick, out, make_console(), families=families, attacks=attacks, rates=rates, train=train,
          first_seed=first_seed, epochs=epochs)


@app.command("retention", context_settings=usage.renamed(**{"protect-prompts": "protection-prompts"}))
def bench_retention(
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds 0..N-1; mean and spread.")] = 3,
    first_seed: Annotated[int, typer.Option("--first-seed", min=0,
                                            help="Start at this seed (seeds S..S+N-1), to add seeds to a run.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="A small budget (the tests' smoke run).")] = False,
    recipes: Annotated[list[str], typer.Option("--recipe", help="Only these recipes (repeatable).")] = [],
    model: Annotated[str, typer.Option(
        "--model",
        help="embedded, or a model of its family built by `retain build-base --size M|L` (the capacity study).")] = "embedded",
    lr: Annotated[float, typer.Option(
        "--lr", help="Fine-tuning learning rate (default: the embedded model's, 1e-4, for every size).")] = None,
    set_: Annotated[list[str], typer.Option(
        "--set", help="Method option over the chosen recipes' own, e.g. rehearsal.ratio=2 (the label shows it).")] = [],
    protection_prompts: Annotated[int, typer.Option(
        "--protection-prompts", min=1,
        help="Training prompts per probe the homes protect (default: a home's, 128). (Was --protect-prompts.)")] = None,
    stream: Annotated[list[str], typer.Option(
        "--stream",
        help="demo (default), strings2 (tuning), long (held out), or JSONL skill files, one skill per file in "
             "the order learned (repeat: --stream a.jsonl --stream b.jsonl).")] = [],
    out: Annotated[Path, typer.Option("--out")] = Path("results/retention"),
) -> None:
    """A stream (the demo's unless --stream) learned through a home, one learn per skill: prior-skill retention
    and new-skill accuracy of SFT, SDFT and the protected recipes, side by side."""
    from rich.table import Table

    from retain.bench.retention import RECIPES, run_benchmark, with_options, write_results
    from retain.data.streams import choose
    from retain.data.synthetic import probe_skills

    chosen_stream = choose(list(stream), reserved={s.name for s in probe_skills(n_test=1)})
    for label in recipes:
        if label not in RECIPES:
            raise RetainError(f"unknown recipe {label!r} (known: {', '.join(RECIPES)})", field="--recipe")
    overrides = usage.parse_sets(set_)
    for label in recipes or RECIPES:
        with_options(label, overrides)  # every option checked before anything runs
    console = make_console(stderr=True)
    if lr is not None and not lr > 0:
        raise RetainError(f"must be > 0, got {lr}", field="--lr")
    results = run_benchmark(list(recipes) or None, seeds, quick, progress=lambda what: console.log(what),
                            model=model, overrides=overrides, per_item=protection_prompts, stream=chosen_stream,
                            first_seed=first_seed, **({"lr": lr} if lr is not None else {}))
    gap = Table(title=f"Base model on the {chosen_stream.name} stream's skills (held out, seed 0): SDFT learns "
                      "what its teacher answers")
    for column in ("skill", "student (query only)", "teacher (query + demonstration)", "gap"):
        gap.add_column(column, justify="left" if column == "skill" else "right")
    for name, g in results["stream"]["teacher_gap"].items():
        gap.add_row(name, f"{g['student']:.0%}", f"{g['teacher']:.0%}", f"{g['gap']:+.0%}")
    make_console().print(gap)
    size = f", {results['model']['parameters'] / 1e6:.2f}M parameters"
    title = (f"{chosen_stream.name.capitalize()} stream ({', '.join(results['stream']['skills'])}) through a home "
             f"({seeds} seed(s), mean ± sd{size}, "
             f"{results['budget']['protect_prompts']} protected prompts per probe)")
    table = Table(title=title)
    for column in ("recipe", "lr", "new-skill acc", "prior kept", "ACC", "BWT", "gate passed", "seconds", "CPU s"):
        table.add_column(column, justify="left" if column == "recipe" else "right")
    for label, s in results["summary"].items():
        rates = sorted({rate for run in results["runs"] if run["label"] == label for rate in run["lr"]})
        table.add_row(label, ", ".join(f"{rate:g}" for rate in rates), _cell(s["new_skill_accuracy"]),
                      _cell(s["prior_retention"]), _cell(s["acc"]), _cell(s["bwt"]), _cell(s["gate_passed"], 1),
                      _cell(s["seconds"], 0), _cell(s["cpu_seconds"], 0))
    make_console().print(table)
    for path in write_results(results, out):
        console.print(f"wrote {path}")


@app.command("capacity")
def bench_capacity(
    results: Annotated[list[Path], typer.Argument(
        metavar="RETENTION_JSON...",
        help="retention.json files of `retain bench retention --model ...`, one or more per model size.")],
    out: Annotated[Path, typer.Option("--out")] = Path("results/capacity"),
) -> None:
    """Prior-skill retention and new-skill accuracy against model size, from retention results: a table,
    capacity.json and capacity.png."""
    from rich.table import Table

    from retain.bench.capacity import combine, write_results

    doc = combine(list(results))
    table = Table(title="Demo stream through a home, by model size (mean ± sd)")
    for column in ("parameters", "recipe", "seeds", "new-skill acc", "prior kept"):
        table.add_column(column, justify="left" if column == "recipe" else "right")
    for model in doc["models"]:
        for label, r in sorted(model["recipes"].items()):
            table.add_row(f"{model['parameters'] / 1e6:.2f}M", label, str(r["seeds"]),
                          _cell(r["new_skill_accuracy"]), _cell(r["prior_retention"]))
    make_console().print(table)
    for path in write_results(doc, out):
        make_console(stderr=True).print(f"wrote {path}")


@app.command("knowledge")
def bench_knowledge(
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds 0..N-1; mean and spread.")] = 3,
    recipe: Annotated[list[str], typer.Option("--recipe", help="sft, sdft, default (repeatable; default: all).")] = [],
    epochs: Annotated[Optional[int], typer.Option("--epochs", callback=usage.number(minimum=1),
                                                  help="Passes over the questions (default 20; 2 with --quick).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Two entities, two passes: a smoke run.")] = False,
    out: Annotated[Path, typer.Option("--out")] = Path("results/knowledge"),
) -> None:
    """Facts the embedded model cannot know, learned from documents into a home (SFT on the documents, SDFT,
    the home's default learn): closed-book accuracy on held-out questions against the teacher's with the
    passage, and prior skills kept; knowledge.json and knowledge.png."""
    from retain.bench.knowledge import RECIPES, run_benchmark, table, write_results

    for label in recipe:
        if label not in RECIPES:
            raise RetainError(f"must be one of {', '.join(RECIPES)}, got {label!r}", field="--recipe")
    console = make_console(stderr=True)
    results = run_benchmark(recipe or None, seeds=seeds, quick=quick, epochs=epochs,
                            progress=lambda message: console.print(message))
    print(table(results))
    for path in write_results(results, out):
        console.print(f"wrote {path}")


@app.command("feedback")
def bench_feedback(
    rounds: Annotated[int, typer.Option("--rounds", callback=usage.number(minimum=1))] = 6,
    per_round: Annotated[int, typer.Option("--per-round", callback=usage.number(minimum=2),
                                           help="Questions the user asks (and corrects when wrong) per round.")] = 96,
    skill: Annotated[str, typer.Option("--skill", help="The behaviour corrected: a new skill of the embedded "
                                                       "library (ends, rotr, swap, ...).")] = "ends",
    poison: Annotated[int, typer.Option("--poison", callback=usage.number(minimum=0),
                                        help="Poisoned corrections a malicious user plants per round.")] = 4,
    seed: Annotated[int, typer.Option("--seed", callback=usage.seed)] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="Two short rounds: a smoke run.")] = False,
    out: Annotated[Path, typer.Option("--out")] = Path("results/feedback"),
) -> None:
    """A simulated user talks to `retain serve` through the openai client, corrects wrong answers, and the home
    learns from the feedback each round; then the server's latency with 1, 4 and 16 clients. feedback.json and
    feedback.png."""
    from retain.bench.feedback import run_benchmark, table, write_results
    from retain.data.synthetic import NEW_RULES

    if skill not in NEW_RULES:
        raise RetainError(f"must be one of {', '.join(NEW_RULES)}, got {skill!r}", field="--skill")
    console = make_console(stderr=True)
    results = run_benchmark(rounds, per_round, poison, seed=seed, quick=quick, skill=skill,
                            progress=lambda message: console.print(message))
    print(table(results))
    for path in write_results(results, out):
        console.print(f"wrote {path}")
