"""``retain demo``: the embedded model learns three new skills one after another with SFT, with SDFT, and in a
home with the home's default protection (``retain init HOME`` then ``retain learn HOME FILE`` for each skill,
no options), under the same budget, and we measure what each keeps of the skills it already had.

The home's stream runs in a child process beside SFT and SDFT. SFT and SDFT run on one thread; the home, the
longest of the three (its guard, rate pilots and rehearsal), on every core up to 4, sharing one with them while
they run (:func:`_home_threads`). Its prior skills are the home's suite (the embedded probes, held-out prompts
of their own) and its new skills' held-out prompts are the ones its learns split off.

The demo's budget is half the benchmarks' (256 examples per skill, :data:`DEMO_N_TRAIN`), so that ``make
demo`` takes about 3 minutes on 2 cores with the install; ``retain demo --full`` runs the budget ``retain bench
retention --stream demo`` measures (512, :class:`retain.domains.language.Budget`).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from retain.console import console as make_console
from retain.domains import language
from retain.domains.language import EMBEDDED_SDFT, Budget
from retain.evaluate.evaluation import accuracy, drift_kl
from retain.recipe import EMBEDDED, Recipe, default_lr
from retain.report.plots import matrices_png, prior_png
from retain.report.runs_report import write_demo_report
from retain.run import RunResult, progress_bar, run
from retain.seeding import seed_everything


# Examples per skill in ``retain demo`` (``--full``: the benchmarks' Budget.n_train, 512). At 256 the demo takes
# 140 s on 2 cores (243 s at 512) and its home still keeps > 90% of its priors (3 seeds: 92.2%).
DEMO_N_TRAIN = 256


@dataclass
class DemoConfig:
    """The demo's budget (:data:`DEMO_N_TRAIN` examples per skill, otherwise
    :class:`retain.domains.language.Budget`'s defaults), methods, seeds and SDFT teacher."""

    n_train: int = DEMO_N_TRAIN
    n_test: int = Budget.n_test
    methods: tuple[str, ...] = ("sft", "sdft")
    home: bool = True  # also learn the stream in a home with its default protection
    epochs: int = Budget.epochs
    batch_size: int = Budget.batch_size
    lr: float | None = None
    seeds: int = 1
    teacher: str = "ema"
    sdft_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def quick(cls) -> "DemoConfig":
        q = Budget.quick()
        return cls(n_train=q.n_train, n_test=q.n_test)

    @classmethod
    def full(cls) -> "DemoConfig":
        """The budget the retention benchmark measures the demo stream with."""
        return cls(n_train=Budget.n_train)

    def budget(self) -> Budget:
        return Budget(n_train=self.n_train, n_test=self.n_test, epochs=self.epochs, batch_size=self.batch_size)


def capability_check(console: Console, cfg: DemoConfig, base: Any) -> dict[str, Any]:
    """What SDFT needs from the base model, measured before any training."""
    adapter = base
    stream, probes = language.demo_skills(cfg.budget(), 0)
    table = Table(title="Embedded base model, before any training (held-out queries)")
    table.add_column("skill")
    table.add_column("kind")
    table.add_column("student (query only)", justify="right")
    table.add_column("teacher (query + demonstration)", justify="right")
    facts: dict[str, Any] = {"probes": {}, "new_skills": {}}
    for skill in probes:
        score = accuracy(adapter, skill)
        facts["probes"][skill.name] = score
        kind = "general: uses a demonstration" if skill.with_demonstration else "prior skill"
        table.add_row(skill.name, kind, "" if skill.with_demonstration else f"{score:.0%}",
                      f"{score:.0%}" if skill.with_demonstration else "")
    for skill in stream:
        student = accuracy(adapter, skill, with_demonstration=False)
        teacher = accuracy(adapter, skill, with_demonstration=True)
        facts["new_skills"][skill.name] = {"student": student, "teacher": teacher, "gap": teacher - student}
        table.add_row(skill.name, "new skill", f"{student:.0%}", f"{teacher:.0%}  (gap {teacher - student:+.0%})")
    console.print(table)
    return facts


def _matrix_table(result: RunResult) -> Table:
    """R[i][j] on the stream, then the probes: prior skills (their mean) and demonstration use."""
    table = Table(title=f"{result.method} (seed {result.seed}): accuracy after each skill of the stream")
    table.add_column("")
    for name in result.tasks:
        table.add_column(name, justify="right")
    prior = [j for j, p in enumerate(result.probes) if p != "in-context"]
    table.add_column("prior skills", justify="right")
    if len(prior) < len(result.probes):
        table.add_column("in-context", justify="right")
    labels = ["before"] + [f"after {s}" for s in result.tasks]
    for label, row, probe_row in zip(labels, result.matrix, result.probe_matrix):
        cells = [f"{v:.0%}" for v in row] + [f"{sum(probe_row[j] for j in prior) / len(prior):.0%}"]
        cells += [f"{probe_row[j]:.0%}" for j, p in enumerate(result.probes) if p == "in-context"]
        table.add_row(label, *cells)
    return table


SUMMARY_KEYS = [("new_skill_accuracy", "new skill %"), ("prior_retention", "prior kept %"),
                ("acc", "ACC %"), ("bwt", "BWT"), ("forgetting", "forget %"), ("drift_kl", "KL nats")]


def _fmt(values: list[float], key: str) -> str:
    pct = key not in ("drift_kl", "bwt")
    scale = 100.0 if pct else 1.0
    mean = statistics.fmean(values) * scale
    text = f"{mean:.1f}" if pct else f"{mean:+.2f}" if key == "bwt" else f"{mean:.2f}"
    if len(values) > 1:
        text += f"±{statistics.stdev(values) * scale:.1f}" if pct else f"±{statistics.stdev(values):.2f}"
    return text


def summary_table(by_method: dict[str, list[dict[str, float]]]) -> Table:
    seeds = len(next(iter(by_method.values())))
    table = Table(title=f"Summary (mean{' ± std over ' + str(seeds) + ' seeds' if seeds > 1 else ''})",
                  box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    table.add_column("method", no_wrap=True)
    for _, label in SUMMARY_KEYS:
        table.add_column(label, justify="right", no_wrap=True)
    for method, runs in by_method.items():
        table.add_row(method, *[_fmt([r[k] for r in runs], k) for k, _ in SUMMARY_KEYS])
    return table


HOME_METHOD = "home (default)"


def home_stream(budget: Budget, seed: int, order: list[str], threads: int = 1) -> dict[str, Any]:
    """The demo's stream of ``seed`` learned into a fresh home with no options (its default protection), as a
    run's dict (:meth:`retain.run.RunResult.to_dict`'s keys), probes in ``order``; the champion's drift from
    the base on the probes. Torch uses ``threads`` threads."""
    import shutil
    import tempfile

    import torch

    from retain.data.jsonl import write_examples
    from retain.home import init_home_from_model
    from retain.home.stream import learn_stream
    from retain.home.versions import champion_loader

    torch.set_num_threads(threads)
    work = Path(tempfile.mkdtemp(prefix="retain-demo-home-"))
    try:
        init_home_from_model(work / "home", "embedded")
        stream, probes = language.demo_skills(budget, seed)
        files = []
        for skill in stream:
            files.append(work / f"{skill.name}.jsonl")
            write_examples(files[-1], skill.train + skill.test)
        learned = learn_stream(work / "home", files, seed=seed, force="demo: the stream goes on",
                               epochs=budget.epochs, batch_size=budget.batch_size,
                               test_fraction=budget.n_test / (budget.n_train + budget.n_test))
        load, _ = champion_loader(work / "home")
        seed_everything(seed)
        drift = drift_kl(language.load_model(Recipe()), load(), probes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    column = [learned["probes"].index(name) for name in order]
    summary = {**learned["summary"], "drift_kl": drift}
    return {"scenario": "demo-stream", "method": HOME_METHOD, "seed": seed, "tasks": learned["skills"],
            "probes": order, "matrix": learned["R"],
            "probe_matrix": [[row[j] for j in column] for row in learned["probe_R"]],
            "train_seconds": [], "recipe": {"method": learned["methods"][0], "lr": learned["lr"],
                                            "protected": learned["protected"]},
            "summary": summary, "decisions": learned["decisions"]}


def _home_streams(budget: Budget, seeds: int, order: list[str], threads: int) -> list[dict[str, Any]]:
    return [home_stream(budget, seed, order, threads) for seed in range(seeds)]


def _home_threads() -> int:
    """The home process's torch threads: every core up to 4 (more do not speed up the embedded model). It
    shares one with SFT and SDFT while they run, then has them all. Alone on 2 cores, 2 threads make the home's
    stream 1.25x faster than 1 (101 s against 126 s at the demo's budget); inside the demo on 2 cores the gain
    is lost to the shared core while SFT and SDFT run (140 s against 143 s); it counts on more cores.
    ``OMP_NUM_THREADS``, when set, is the user's choice and is kept (the test suite runs two workers on one
    thread each)."""
    import os

    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return int(given)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def run_demo(cfg: DemoConfig, out: Path, console: Console | None = None) -> dict[str, Any]:
    """Run the demo and write ``results.json`` and the plots into ``out``; return the results."""
    import torch

    console = console or make_console()
    start = time.perf_counter()
    lr = cfg.lr if cfg.lr is not None else default_lr(EMBEDDED, lora=False)
    sdft_options = language.embedded_sdft_options(cfg.teacher, **cfg.sdft_options)
    base = language.load_model(Recipe())
    console.rule("[bold]retain demo[/]: teach the embedded model new skills, SFT vs SDFT"
                 + (" vs a home's default protection" if cfg.home else ""))
    console.print(f"Budget per method and skill: {cfg.n_train} examples x {cfg.epochs} passes, batch {cfg.batch_size}, "
                  f"lr {lr:g} (AdamW, cosine, grad clip 1). Same examples and passes for every method.")
    console.print("SDFT settings that differ from the library (paper) defaults on this model:")
    for key, (value, why) in EMBEDDED_SDFT.items():
        console.print(f"  sdft.{key} = {value}: {why}")
    console.print(f"  sdft.teacher = {cfg.teacher} (rate {sdft_options.get('ema_rate', 0.01)})")
    capability = capability_check(console, cfg, base)
    _, probes = language.demo_skills(cfg.budget(), 0)
    by_method: dict[str, list[dict[str, float]]] = {m: [] for m in cfg.methods}
    results: list[dict[str, Any]] = []
    pool, pending = None, None
    threads = torch.get_num_threads()
    if cfg.home:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        torch.set_num_threads(1)  # SFT and SDFT on one core; the home's process has the rest, then all of them
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        pending = pool.submit(_home_streams, cfg.budget(), cfg.seeds, [p.name for p in probes], _home_threads())
        console.print(f"In a second process: a home with no options (`retain init HOME`, then `retain learn HOME "
                      f"FILE` for each skill) learns the same stream ({HOME_METHOD}).")
    with progress_bar() as progress:
        for seed in range(cfg.seeds):
            scenario = language.demo_stream(cfg.budget(), seed)
            for method in cfg.methods:
                recipe = language.demo_recipe(method, seed, cfg.budget(), lr=lr, teacher=cfg.teacher,
                                              sdft=cfg.sdft_options)
                result = run(scenario, recipe, progress=progress)
                seed_everything(seed)
                result.summary["drift_kl"] = drift_kl(base, result.adapter, probes)
                by_method[method].append(result.summary)
                results.append(result.to_dict())
                progress.console.print(_matrix_table(result))
    torch.set_num_threads(threads)
    if pending is not None:
        with console.status(f"waiting for {HOME_METHOD}"):
            homes = pending.result()
        pool.shutdown()
        for run_dict in homes:
            by_method.setdefault(HOME_METHOD, []).append(run_dict["summary"])
            results.append(run_dict)
            console.print(_matrix_table(RunResult(**{k: run_dict[k] for k in (
                "scenario", "method", "seed", "tasks", "probes", "matrix", "probe_matrix", "train_seconds")},
                extra_memory_bytes=0, recipe=run_dict["recipe"])))
    console.print(summary_table(by_method))
    out.mkdir(parents=True, exist_ok=True)
    first = {r["method"]: r for r in results if r["seed"] == 0}
    skills = results[0]["tasks"]
    matrices_png(out / "accuracy_matrices.png", {m: r["matrix"] for m, r in first.items()}, skills)
    prior_png(out / "prior_skills.png", {m: r["probe_matrix"] for m, r in first.items()}, skills)
    payload = {"config": {**asdict(cfg), "lr": lr, "sdft_options": sdft_options}, "capability": capability,
               "runs": results, "summary": {m: {k: statistics.fmean(r[k] for r in runs) for k in runs[0]}
                                            for m, runs in by_method.items()},
               "seconds": time.perf_counter() - start}
    (out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"Wrote results.json, accuracy_matrices.png and prior_skills.png to [bold]{out}[/] "
                  f"({payload['seconds']:.0f}s)")
    console.print(f"See what happened: open {write_demo_report(payload, out).resolve().as_uri()}", soft_wrap=True)
    return payload
