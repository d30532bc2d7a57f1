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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from retain.console import console
from retain.data.jsonl import read_examples, read_skill
from retain.data.skills import Example, Skill
from retain.domains.language import load_model as load_for_recipe
from retain.domains.language import skills_scenario
from retain.errors import RetainError
from retain.evaluate.evaluation import item_scores, mean_score
from retain.models.causal_lm import CausalLMAdapter
from retain.models.loading import resolve_model_path
from retain.recipe import EMBEDDED, ModelSpec, Recipe
from retain.run import RunResult, run
from retain.seeding import seed_everything
from retain.train.loop import full_state_dict, mixed_precision_or_env, process_state

RECIPE_FILE = "retain_recipe.json"


def load_model(path: str = EMBEDDED, *, lora: bool = False, device: str = "auto",
               model_options: dict[str, Any] | None = None) -> CausalLMAdapter:
    """``embedded`` or a local Hugging Face causal LM folder (a full model or a PEFT adapter folder), in its
    checkpoint's dtype, on ``device`` (``auto``: the accelerator when there is one)."""
    spec = ModelSpec(path=path, lora=lora, device=device,
                     **{k: v for k, v in (model_options or {}).items() if v is not None})
    spec.validate()
    return load_for_recipe(Recipe(model=spec))


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
                methods: tuple[Any, list[Any]] | None = None, protect: list[Any] | None = None) -> LearnResult:
    """Teach the recipe's model ``skill`` (one task of :func:`retain.run.run`); score its held-out split before
    and after. Nothing is written. ``adapter``/``methods`` continue a loaded model and stateful methods;
    ``protect`` is what the model already knows, protected by every consolidation plugin before training."""
    quiet = quiet or not process_state(recipe.model.device).is_main_process
    scenario = skills_scenario(skill.name, [skill])
    scenario.protect = list(protect or [])
    result = run(scenario, recipe, adapter=adapter, methods=methods, quiet=quiet)
    before, after = result.matrix[0][0], result.matrix[-1][0]
    config = {"recipe": result.recipe,
              "held_out": {"fraction": None, "examples": len(skill.test), "scorer": skill.scorer}}
    trained = (f", trained on {result.token_fraction[0]:.0%} of completion tokens (after sdft.skip_tokens)"
               if result.token_fraction else "")
    console(stderr=True, quiet=quiet).print(
        f"[bold]{skill.name}[/]: held-out {skill.scorer} score {before:.1%} -> {after:.1%} "
        f"({len(skill.train)} training examples, {result.train_seconds[0]:.1f}s{trained})")
    return LearnResult(adapter=result.adapter, config=config, scores={"before": before, "after": after},
                       train_seconds=result.train_seconds[0], run=result)


def answered(adapter: CausalLMAdapter, examples: list[Example], max_new_tokens: int = 32) -> list[Example]:
    """``examples`` with every missing demonstration filled by the model's own greedy answer: prior-competence
    data needs no answers, since what is protected is what the model does now."""
    missing = [e for e in examples if not e.demonstration.strip()]
    answers = dict(zip(missing, adapter.answer(missing, max_new_tokens=max_new_tokens))) if missing else {}
    return [replace(e, demonstration=answers[e]) if e in answers else e for e in examples]


def read_protect(paths: list[str | Path]) -> list[Example]:
    """The examples of every ``--prior`` file (JSONL with at least ``prompt``), checked before training."""
    return [e for path in paths for e in read_examples(path, require_demonstration=False, require_reference=False)]


def check_protection(recipe: Recipe, protect: list[Any]) -> None:
    """A consolidation method with nothing to protect is an error, never a silent no-op."""
    _, plugins = recipe.methods()
    plugins = [p for p in plugins if p.needs_prior]
    if plugins and not protect:
        names = "+".join(p.name for p in plugins)
        raise RetainError(f"{names} has nothing to protect in a single learn: name what the model already knows "
                          "with --prior FILE (prompts of its prior skills), or learn into a home", field="--prior")


def check_skill(adapter: Any, recipe: Recipe, skill: Skill) -> None:
    """Before anything runs: every prompt of ``skill`` fits the model (the teacher's too under SDFT,
    :meth:`CausalLMAdapter.check_lengths`) and the objective has something to train on (SDFT's skipped tokens,
    ``Objective.check_examples``); a :class:`RetainError` naming the file and line otherwise. ``adapter`` may be
    a shape without weights (:func:`retain.models.loading.load_shape`)."""
    objective, _ = recipe.methods()
    adapter.check_lengths(skill.train + skill.test, teacher=objective.name == "sdft",
                          template=getattr(objective.config, "teacher_template", None))
    objective.check_examples(adapter, skill.train)


def with_options(recipe: Recipe, model_options: dict[str, Any] | None) -> Recipe:
    """Set ``model_options`` (ModelSpec fields; None values are left out) on ``recipe``; ``max_new_tokens``
    also sets SDFT's rollout length when the method trains with SDFT and its options leave it unset."""
    model_options = {k: v for k, v in (model_options or {}).items() if v is not None}
    if not model_options:
        return recipe
    recipe.model = replace(recipe.model, **model_options)
    if "max_new_tokens" in model_options and "sdft" in recipe.method_names():
        recipe.options["sdft"] = {"max_new_tokens": model_options["max_new_tokens"], **recipe.options.get("sdft", {})}
    recipe.validate()
    return recipe


def learn(model: str, data: str | Path, method: str = "sdft", out: str | None = None, *, lora: bool = False,
          seed: int = 0, options: dict[str, dict[str, Any]] | None = None, epochs: int = 2,
          lr: float | None = None, batch_size: int = 16, scorer: str = "exact", test_fraction: float = 0.2,
          overwrite: bool = False, quiet: bool = False, protect: list[str | Path] | None = None,
          dtype: str = "auto", device: str = "auto", mixed_precision: str | None = None, grad_accum: int = 1,
          gradient_checkpointing: bool = False, model_options: dict[str, Any] | None = None) -> LearnResult:
    """Teach ``model`` the skill in ``data`` (JSONL) with ``method`` and save it to ``out`` with save_pretrained.

    A seeded ``test_fraction`` of the prompts is held out: training never sees them and they give the
    before/after scores. ``protect`` names JSONL files of what the model already knows (prompts; answers are
    optional, the model's own are used where missing): every consolidation method protects them before
    training, and a consolidation method without them is an error. Every input is checked before anything is
    trained or written; ``out`` gets the model (only the adapter under LoRA) and ``retain_recipe.json``, the
    recipe that repeats the run. ``dtype`` and ``device`` say how the model is loaded (:class:`ModelSpec`);
    ``mixed_precision``, ``grad_accum`` and ``gradient_checkpointing`` how it trains (:class:`TrainConfig`;
    ``mixed_precision`` None takes Accelerate's setting, ``ACCELERATE_MIXED_PRECISION``, else ``no``).
    Under a multi-process launch only the main process prints and writes. ``model_options`` are more
    :class:`ModelSpec` fields (``max_prompt_tokens``, ``max_new_tokens``, ``trust_remote_code``,
    ``attn_implementation``; see :func:`with_options`); every prompt's length is checked before anything runs
    (:meth:`CausalLMAdapter.check_lengths`).
    """
    skill = read_skill(data, seed=seed, test_fraction=test_fraction, scorer=scorer)
    recipe = Recipe.for_model(model, method, lora=lora, seed=seed, options=options, lr=lr, epochs=epochs,
                              batch_size=batch_size, spec={"dtype": dtype, "device": device},
                              mixed_precision=mixed_precision_or_env(mixed_precision), grad_accum=grad_accum,
                              gradient_checkpointing=gradient_checkpointing)
    with_options(recipe, model_options)
    prior = read_protect(list(protect or []))
    check_protection(recipe, prior)
    resolve_model_path(model)
    out_path = _prepare_out(out, overwrite)
    seed_everything(recipe.seed)
    adapter = load_for_recipe(recipe)
    check_skill(adapter, recipe, skill)
    result = learn_skill(recipe, skill, quiet=quiet, adapter=adapter,
                         protect=answered(adapter, prior) if prior else None)
    result.config.update(data=str(data), held_out={**result.config["held_out"], "fraction": test_fraction},
                         protect=[str(p) for p in protect or []])
    # Under a multi-process launch every process trained the same weights; one writes them (FSDP2's shards
    # are gathered by all processes first).
    state = full_state_dict(result.adapter.model) if out_path is not None else None
    if out_path is not None and process_state(recipe.model.device).is_main_process:
        result.adapter.save(out_path, state_dict=state)
        (out_path / RECIPE_FILE).write_text(json.dumps(result.config, indent=2, sort_keys=True) + "\n")
        result.out = str(out_path)
    return result


def evaluate(model: str | CausalLMAdapter, skill: Skill | str | Path, *, scorer: str | None = None,
             with_demonstration: bool | None = None, device: str = "auto",
             model_options: dict[str, Any] | None = None) -> float:
    """Score a model (path, ``embedded`` or a loaded adapter, which stays where it is) on a skill or on every
    line of a JSONL file; a path is loaded on ``device``."""
    return mean_score(evaluate_items(model, skill, scorer=scorer, with_demonstration=with_demonstration,
                                     device=device, model_options=model_options))


def evaluate_items(model: str | CausalLMAdapter, skill: Skill | str | Path, *, scorer: str | None = None,
                   with_demonstration: bool | None = None, device: str = "auto",
                   model_options: dict[str, Any] | None = None) -> list[float]:
    """:func:`evaluate`'s per-item scores, one per test example in order (1 or 0 for a pass/fail scorer): the
    outcomes a paired comparison of two models on the same items needs (the home's gate)."""
    if not isinstance(skill, Skill):
        skill = Skill(name=Path(skill).stem, test=read_examples(skill, require_demonstration=False),
                      scorer=scorer or "exact")
    elif scorer is not None:
        skill = Skill(name=skill.name, train=skill.train, test=skill.test, scorer=scorer,
                      with_demonstration=skill.with_demonstration)
    adapter = model if isinstance(model, CausalLMAdapter) else load_model(model, device=device,
                                                                             model_options=model_options)
    return item_scores(adapter, skill, with_demonstration=with_demonstration)

