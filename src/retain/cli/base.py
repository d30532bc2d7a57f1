"""``retain build-base``: build the embedded base model from scratch; the work is in
:mod:`retain.models.tiny.build`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from retain.cli import usage

app = typer.Typer()


def _size(param: typer.CallbackParam, value: str) -> str:
    from retain.models.tiny.build import SIZES

    if value not in SIZES:
        usage.fail(param, f"must be one of {', '.join(SIZES)}, got {value!r}")
    return value


@app.command("build-base")
def build_base(
    out: Annotated[Optional[Path], typer.Option("--out", help="Default: the package's embedded folder.")] = None,
    steps: Annotated[Optional[int], typer.Option(
        "--steps", callback=usage.number(minimum=1), help="Pretraining steps (default: the shipped recipe).")] = None,
    short: Annotated[bool, typer.Option("--short", help="A small, fast build for tests (20 steps).")] = False,
    size: Annotated[str, typer.Option(
        "--size", callback=_size,
        help="S (the shipped model, about 0.87M parameters), M (about 4M) or L (about 16M); --short and --steps "
             "apply on top.")] = "S",
    seed: Annotated[int, typer.Option("--seed", callback=usage.seed)] = 0,
) -> None:
    """Build the embedded base model from scratch (seeded; the shipped one took the default recipe)."""
    from retain.models.tiny.build import BuildConfig, pretrain
    from retain.models.tiny.store import WEIGHTS_DIR
    from retain.run import progress_bar

    cfg = BuildConfig.for_size(size, seed=seed)
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
