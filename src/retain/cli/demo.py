"""``retain demo``: teach the embedded model a stream of new skills with SFT, SDFT and a home's default
protection; the work is in :mod:`retain.demo`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from retain.cli.usage import parse_sets
from retain.errors import RetainError

app = typer.Typer()


@app.command()
def demo(
    quick: Annotated[bool, typer.Option("--quick", help="Small budget (128 examples per skill, about a minute).")] = False,
    full: Annotated[bool, typer.Option(
        "--full", help="The benchmarks' budget (512 examples per skill, not 256; about 4 minutes on 2 cores).")] = False,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Repeat over seeds 0..N-1; report mean and spread.")] = 1,
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder (default: ./retain-demo-<time>).")] = None,
    teacher: Annotated[str, typer.Option("--teacher", help="SDFT teacher: ema, frozen or live.")] = "ema",
    set_: Annotated[list[str], typer.Option("--set", help="Extra SDFT option, e.g. sdft.ema_rate=0.02.")] = [],
    home: Annotated[bool, typer.Option(
        "--home/--no-home", help="Also learn the stream in a home with its default protection.")] = True,
) -> None:
    """The main job: teach the embedded model a stream of new skills with SFT, SDFT and a home's default
    protection (in a second process); compare what each learned and forgot."""
    from retain.demo import DemoConfig, run_demo
    from retain.methods.registry import make_config
    from retain.methods.sdft import SDFT

    if quick and full:
        raise RetainError("--quick and --full are two budgets: pass one", field="--full")
    cfg = DemoConfig.quick() if quick else DemoConfig.full() if full else DemoConfig()
    cfg.seeds = seeds
    cfg.teacher = teacher
    cfg.home = home
    extra = parse_sets(set_)
    if set(extra) - {"sdft"}:
        raise RetainError("the demo takes only sdft.* options", field="--set")
    cfg.sdft_options = extra.get("sdft", {})
    make_config(SDFT, {"teacher": teacher, **cfg.sdft_options}, "sdft")
    out = out or Path(f"retain-demo-{time.strftime('%Y%m%d-%H%M%S')}")
    run_demo(cfg, out)
