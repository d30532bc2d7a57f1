"""The public Python API: load a model, build skills and a stream, run methods, read the metrics.

    import retain
    from retain.run import run
    stream, probes = retain.new_skills(), retain.probe_skills()
    recipe = retain.Recipe.for_model("embedded", "sdft+ewc")
    result = run(retain.skills_scenario("my-stream", stream, probes), recipe)
    print(result.matrix, result.summary)
    retain.learn("embedded", "skill.jsonl", "sdft", out="out/")
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from retain.data.jsonl import read_examples, read_skill
from retain.data.skills import Skill
from retain.domains.language import load_model as load_for_recipe
from retain.domains.language import skills_scenario
from retain.errors import RetainError
from retain.evaluate.evaluation import accuracy
from retain.models.causal_lm import CausalLMAdapter, resolve_model_path
from retain.recipe import EMBEDDED, ModelSpec, Recipe
from retain.run import RunResult, run

RECIPE_FILE = "retain_recipe.json"


def load_model(path: str = EMBEDDED, *, lora: bool = False) -> CausalLMAdapter:
    """``embedded`` or a local Hugging Face causal LM folder (a full model or a PEFT adapter folder)."""
    return load_for_recipe(Recipe(model=ModelSpec(path=path, lora=lora)))


@dataclass
class LearnResult:
    """A learned model and what is known about the run: the recipe and data, held-out scores, time."""

    adapter: CausalLMAdapter
    config: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0
    out: str | None = None
    run: RunResult | None = field(default=None, repr=False)


def _prepare_out(out: str | None, overwrite: bool) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise RetainError("output folder exists and is not empty (pass --overwrite to replace its files)",
                          file=str(path))
    return path


def learn_skill(recipe: Recipe, skill: Skill, *, quiet: bool = False, adapter: Any = None,
                methods: tuple[Any, list[Any]] | None = None) -> LearnResult:
    """Teach the recipe's model ``skill`` (one task of :func:`retain.run.run`); score its held-out split before
    and after. Nothing is written. ``adapter``/``methods`` continue a loaded model and stateful methods."""
    result = run(skills_scenario(skill.name, [skill]), recipe, adapter=adapter, methods=methods, quiet=quiet)
    before, after = result.matrix[0][0], result.matrix[-1][0]
    config = {"recipe": result.recipe,
              "held_out": {"fraction": None, "examples": len(skill.test), "scorer": skill.scorer}}
    Console(stderr=True, quiet=quiet).print(
        f"[bold]{skill.name}[/]: held-out {skill.scorer} score {before:.1%} -> {after:.1%} "
        f"({len(skill.train)} training examples, {result.train_seconds[0]:.1f}s)")
    return LearnResult(adapter=result.adapter, config=config, scores={"before": before, "after": after},
                       train_seconds=result.train_seconds[0], run=result)


def learn(model: str, data: str | Path, method: str = "sdft", out: str | None = None, *, lora: bool = False,
          seed: int = 0, options: dict[str, dict[str, Any]] | None = None, epochs: int = 2,
          lr: float | None = None, batch_size: int = 16, scorer: str = "exact", test_fraction: float = 0.2,
          overwrite: bool = False, quiet: bool = False) -> LearnResult:
    """Teach ``model`` the skill in ``data`` (JSONL) with ``method`` and save it to ``out`` with save_pretrained.

    A seeded ``test_fraction`` of the prompts is held out: training never sees them and they give the
    before/after scores. Every input is checked before anything is trained or written; ``out`` gets the model
    (only the adapter under LoRA) and ``retain_recipe.json``, the recipe that repeats the run.
    """
    skill = read_skill(data, seed=seed, test_fraction=test_fraction, scorer=scorer)
    recipe = Recipe.for_model(model, method, lora=lora, seed=seed, options=options, lr=lr, epochs=epochs,
                              batch_size=batch_size)
    resolve_model_path(model)
    out_path = _prepare_out(out, overwrite)
    result = learn_skill(recipe, skill, quiet=quiet)
    result.config.update(data=str(data), held_out={**result.config["held_out"], "fraction": test_fraction})
    if out_path is not None:
        result.adapter.save(out_path)
        (out_path / RECIPE_FILE).write_text(json.dumps(result.config, indent=2, sort_keys=True) + "\n")
        result.out = str(out_path)
    return result


def evaluate(model: str | CausalLMAdapter, skill: Skill | str | Path, *, scorer: str | None = None,
             with_demonstration: bool | None = None) -> float:
    """Score a model (path, ``embedded`` or a loaded adapter) on a skill or on every line of a JSONL file."""
    if not isinstance(skill, Skill):
        skill = Skill(name=Path(skill).stem, test=read_examples(skill, require_demonstration=False),
                      scorer=scorer or "exact")
    elif scorer is not None:
        skill = Skill(name=skill.name, train=skill.train, test=skill.test, scorer=scorer,
                      with_demonstration=skill.with_demonstration)
    adapter = model if isinstance(model, CausalLMAdapter) else load_model(model)
    return accuracy(adapter, skill, with_demonstration=with_demonstration)

