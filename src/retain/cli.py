"""The ``retain`` command line. It parses, calls the library and prints; it holds no logic of its own."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import click
import typer
from rich.console import Console

from retain.errors import RetainError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="One model that keeps learning new skills without forgetting the old ones.")
bench_app = typer.Typer(no_args_is_help=True, help="The tables we publish.")
app.add_typer(bench_app, name="bench")


def parse_sets(pairs: list[str]) -> dict[str, dict[str, object]]:
    """``["sdft.teacher=frozen", "ewc.lam=100"]`` -> ``{"sdft": {"teacher": "frozen"}, "ewc": {"lam": "100"}}``."""
    options: dict[str, dict[str, object]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        method, dot, name = key.partition(".")
        if not sep or not dot or not method or not name:
            raise RetainError(f"expected METHOD.KEY=VALUE, got {pair!r}", field="--set")
        options.setdefault(method.strip().lower(), {})[name.strip()] = value
    return options


@app.command()
def demo(quick: bool = typer.Option(False, "--quick", help="Small budget (about 2 minutes); what tests run."),
         seeds: int = typer.Option(1, "--seeds", min=1, help="Repeat over seeds 0..N-1; report mean and spread."),
         out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: ./retain-demo-<time>)."),
         teacher: str = typer.Option("ema", "--teacher", help="SDFT teacher: ema, frozen or live."),
         set_: list[str] = typer.Option([], "--set", help="Extra SDFT option, e.g. sdft.ema_rate=0.02.")) -> None:
    """The main job: teach the embedded model a stream of new skills with SFT and SDFT; compare forgetting."""
    from retain.demo import DemoConfig, run_demo

    cfg = DemoConfig.quick() if quick else DemoConfig()
    cfg.seeds = seeds
    cfg.teacher = teacher
    extra = parse_sets(set_)
    if set(extra) - {"sdft"}:
        raise RetainError("the demo takes only sdft.* options", field="--set")
    cfg.sdft_options = extra.get("sdft", {})
    from retain.methods.sdft import SDFT
    from retain.methods.registry import make_config
    make_config(SDFT, {"teacher": teacher, **cfg.sdft_options}, "sdft")
    out = out or Path(f"retain-demo-{time.strftime('%Y%m%d-%H%M%S')}")
    run_demo(cfg, out)


@app.command()
def learn(model: str = typer.Argument(..., help="A home, `embedded`, or a local Hugging Face causal LM folder."),
          data: Path = typer.Argument(..., help="JSONL: prompt, demonstration, optional answer."),
          method: str = typer.Option("sdft", "--method", "-m", help="e.g. sdft, sft, sdft+ewc, sft+si+replay."),
          out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to save_pretrained the result."),
          lora: bool = typer.Option(False, "--lora", help="Train a PEFT LoRA adapter instead of all weights."),
          seed: int = typer.Option(0, "--seed"),
          epochs: int = typer.Option(2, "--epochs", help="Passes over the data (the paper: 2 for skills)."),
          lr: Optional[float] = typer.Option(None, "--lr", help="Default: 1e-5 (paper) or the embedded model's own."),
          batch_size: int = typer.Option(16, "--batch-size"),
          scorer: str = typer.Option("exact", "--scorer", help="exact, alnum, or module:function."),
          set_: list[str] = typer.Option([], "--set", help="Method option, e.g. sdft.teacher=frozen, ewc.lam=100."),
          force: Optional[str] = typer.Option(None, "--force", help="(home) Promote despite the gate; the reason is recorded."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in a non-empty --out."),
          mlflow: Optional[str] = typer.Option(None, "--mlflow", help="(home) Also log to this MLflow tracking URI."),
          wait: float = typer.Option(0.0, "--wait", help="(home) Seconds to wait for another learn's lock (default: fail at once)."),
          quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Teach a model (or the champion of a home) the skill in DATA.

    Into a home, the candidate is gated against the champion; exit code 1 when the gate rejects it.
    """
    from retain.home import is_home

    options = parse_sets(set_)
    if is_home(model):
        from retain.home import learn_in_home
        if out is not None:
            raise RetainError("a home keeps its own versions; use `retain export` instead", field="--out")
        outcome = learn_in_home(model, data, method=method, options=options, seed=seed, lora=lora, force=force,
                                quiet=quiet, epochs=epochs, lr=lr, batch_size=batch_size, scorer=scorer,
                                mlflow_uri=mlflow, lock_timeout=wait)
        # A candidate the gate rejects is recorded, but the command did not do what was asked: exit 1.
        if not outcome.promoted:
            raise typer.Exit(1)
        return
    if force is not None or mlflow is not None:
        raise RetainError("only applies when learning into a home", field="--force" if force is not None else "--mlflow")
    if out is None:
        raise RetainError("is required when MODEL is not a home", field="--out")
    from retain import api
    result = api.learn(model, data, method, str(out), lora=lora, seed=seed, options=options, epochs=epochs, lr=lr,
                       batch_size=batch_size, scorer=scorer, overwrite=overwrite, quiet=quiet)
    Console(stderr=True, quiet=quiet).print(f"Saved to [bold]{result.out}[/]")


@app.command("eval")
def eval_(model: str = typer.Argument(..., help="`embedded` or a local causal LM (or adapter) folder."),
          data: Path = typer.Argument(..., help="JSONL with prompt and answer (or demonstration)."),
          scorer: str = typer.Option("exact", "--scorer", help="exact, alnum, or module:function."),
          with_demonstration: bool = typer.Option(False, "--with-demonstration",
                                                  help="Show each query's demonstration in the prompt (the teacher's view)."),
          as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Score a model on a skill file: the mean score of greedy answers."""
    from retain import api
    from retain.data.jsonl import read_examples
    from retain.evaluate.scorers import get_scorer

    get_scorer(scorer)
    n = len(read_examples(data, require_demonstration=with_demonstration))
    score = api.evaluate(model, data, scorer=scorer, with_demonstration=with_demonstration)
    if as_json:
        print(json.dumps({"model": model, "data": str(data), "scorer": scorer, "examples": n, "score": score}))
    else:
        print(f"{data}: {score:.4f} ({scorer}, {n} examples)")


@app.command("build-base")
def build_base(out: Optional[Path] = typer.Option(None, "--out", help="Default: the package's embedded folder."),
               steps: Optional[int] = typer.Option(None, "--steps", help="Pretraining steps (default: the shipped recipe)."),
               short: bool = typer.Option(False, "--short", help="A small, fast build for tests (20 steps)."),
               seed: int = typer.Option(0, "--seed")) -> None:
    """Build the embedded base model from scratch (seeded; the shipped one took the default recipe)."""
    from retain.models.tiny.build import BuildConfig, pretrain
    from retain.models.tiny.store import WEIGHTS_DIR
    from retain.run import progress_bar

    cfg = BuildConfig(seed=seed)
    if short:
        cfg.steps, cfg.warmup_steps = 20, 5
    if steps is not None:
        cfg.steps = steps
    cfg.validate()
    target = out or WEIGHTS_DIR
    with progress_bar() as progress:
        task = progress.add_task("pretraining", total=cfg.steps, info="")
        facts = pretrain(target, cfg, lambda s, n, loss: progress.update(task, completed=s, info=f"loss {loss:.3f}"))
    print(f"Built {facts['parameters']:,} parameters in {facts['pretrain_seconds']:.0f}s into {target}")


@bench_app.command("speed")
def bench_speed(examples: int = typer.Option(64, "--examples", help="Training examples per method."),
                lora: bool = typer.Option(False, "--lora"),
                out: Path = typer.Option(Path("results/speed"), "--out")) -> None:
    """Time per training example and peak memory for SFT and SDFT on the embedded model, side by side."""
    from retain.bench.speed import run_speed

    run_speed(examples=examples, lora=lora, out=out)


def _register_extensions() -> None:
    from retain.cli_bench_consolidation import register as register_bench
    from retain.cli_ledger import register as register_ledger

    register_ledger(app)
    register_bench(bench_app)


_register_extensions()


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except RetainError as err:
        print(f"retain: error: {err}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("retain: aborted", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print("retain: interrupted", file=sys.stderr)
        sys.exit(130)
    # Outside standalone mode click returns the code of `typer.Exit(code)` instead of exiting with it.
    if isinstance(code, int) and code != 0:
        sys.exit(code)
