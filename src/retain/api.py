"""The public Python API: load a model, build skills and a stream, run methods, read the metrics.

    import retain
    model = retain.load_model("embedded")
    stream, probes = retain.demo_skills()
    result, model = retain.run_stream("embedded", stream, probes, "sdft")
    print(result.matrix, result.summary)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from retain.data.jsonl import read_skill
from retain.data.skills import Skill
from retain.errors import RetainError
from retain.evaluate.evaluation import accuracy
from retain.methods.registry import parse_method
from retain.models.causal_lm import EMBEDDED, CausalLMAdapter, load_adapter, resolve_model_path
from retain.seeding import seed_everything
from retain.train.loop import TrainConfig, train_task
from retain.train.runner import progress_bar

# SDFT's paper trains 7B models at 5e-6..5e-5 with full fine-tuning; LoRA adapters take about 10x that.
PAPER_LR = 1e-5
LORA_LR_FACTOR = 10.0


def load_model(path: str = EMBEDDED, *, lora: bool = False) -> CausalLMAdapter:
    """``embedded`` or a local Hugging Face causal LM folder (a full model or a PEFT adapter folder)."""
    return load_adapter(path, lora=lora)


def default_lr(model: str, lora: bool) -> float:
    """The paper's learning rate for outside models; the embedded model's own tuned rate for it."""
    from retain.models.tiny.build import EMBEDDED_FINETUNE_LR
    base = EMBEDDED_FINETUNE_LR if model == EMBEDDED else PAPER_LR
    return base * (LORA_LR_FACTOR if lora else 1.0)


@dataclass
class LearnResult:
    """A learned model and what is known about the run: the resolved config, held-out scores, time."""

    adapter: CausalLMAdapter
    config: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    out: str | None = None


def _prepare_out(out: str | None, overwrite: bool) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise RetainError("output folder exists and is not empty (pass --overwrite to replace its files)",
                          file=str(path))
    return path


def learn(model: str, data: str | Path, method: str = "sdft", out: str | None = None, *, lora: bool = False,
          seed: int = 0, options: dict[str, dict[str, Any]] | None = None, epochs: int = 2,
          lr: float | None = None, batch_size: int = 16, scorer: str = "exact", test_fraction: float = 0.2,
          overwrite: bool = False, quiet: bool = False) -> LearnResult:
    """Teach ``model`` the skill in ``data`` (JSONL) with ``method`` and save it to ``out`` with save_pretrained.

    A seeded ``test_fraction`` of the prompts is held out: training never sees them and they give the
    before/after scores. Every input is checked before anything is trained or written.
    """
    skill = read_skill(data, seed=seed, test_fraction=test_fraction, scorer=scorer)
    objective, plugins = parse_method(method, options)
    resolve_model_path(model)
    out_path = _prepare_out(out, overwrite)
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr if lr is not None else default_lr(model, lora),
                        seed=seed)
    train.validate()
    seed_everything(seed)
    adapter = load_adapter(model, lora=lora)
    console = Console(stderr=True, quiet=quiet)
    before = accuracy(adapter, skill) if skill.test else float("nan")
    with progress_bar(quiet) as progress:
        task = progress.add_task(f"{method}: learning {skill.name}", total=1, info="")
        start = time.perf_counter()
        train_task(adapter, objective, plugins, skill.train, train,
                   on_step=lambda s, n, loss: progress.update(task, completed=s, total=n, info=f"loss {loss:.3f}"))
        seconds = time.perf_counter() - start
    after = accuracy(adapter, skill) if skill.test else float("nan")
    config = {"model": model, "data": str(data), "method": method, "lora": lora, "seed": seed,
              "train": asdict(train), "objective": {objective.name: asdict(objective.config)},
              "consolidation": {p.name: asdict(p.config) for p in plugins},
              "held_out": {"fraction": test_fraction, "examples": len(skill.test), "scorer": scorer}}
    if out_path is not None:
        adapter.save(out_path)
        (out_path / "retain_recipe.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    console.print(f"[bold]{skill.name}[/]: held-out {scorer} score {before:.1%} -> {after:.1%} "
                  f"({len(skill.train)} training examples, {seconds:.1f}s)")
    return LearnResult(adapter=adapter, config=config, scores={"before": before, "after": after},
                       train_seconds=seconds, out=str(out_path) if out_path else None)


def evaluate(model: str | CausalLMAdapter, skill: Skill | str | Path, *, scorer: str | None = None,
             with_demonstration: bool | None = None) -> float:
    """Score a model (path, ``embedded`` or a loaded adapter) on a skill or on every line of a JSONL file."""
    if not isinstance(skill, Skill):
        from retain.data.jsonl import read_examples
        skill = Skill(name=Path(skill).stem, test=read_examples(skill, require_demonstration=False),
                      scorer=scorer or "exact")
    elif scorer is not None:
        skill = Skill(name=skill.name, train=skill.train, test=skill.test, scorer=scorer,
                      with_demonstration=skill.with_demonstration)
    adapter = model if isinstance(model, CausalLMAdapter) else load_adapter(model)
    return accuracy(adapter, skill, with_demonstration=with_demonstration)
