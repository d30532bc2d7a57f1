"""The language domain: a causal LM learns a stream of string skills and is watched through probes of the
skills it had before (``retain demo``'s stream on the embedded model; any list of skills on any model).

A skill becomes a :class:`~retain.scenario.Task` scored by held-out greedy accuracy
(:func:`retain.evaluate.evaluation.accuracy`); the model a run starts from is loaded from the recipe's
:class:`~retain.recipe.ModelSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retain.data.skills import Skill
from retain.recipe import EMBEDDED, Recipe
from retain.scenario import Scenario, Task

# Where runs on the embedded model depart from the library's (paper) SDFT defaults, and why (the demo prints it).
EMBEDDED_SDFT: dict[str, tuple[Any, str]] = {
    "skip_tokens": (0, "answers are 3-14 characters, so masking the first 3 tokens (the official code's value, "
                       "meant for long chat answers) would hide a third of every answer"),
    "max_new_tokens": (24, "no demo answer is longer than 14 characters"),
}
# The validation stream and probes that tuning uses (``retain.bench.language_tuning``), never reported on.
VALIDATION_SEED = 100


@dataclass
class Budget:
    """How much of the demo stream one run sees: examples per skill, held-out queries, passes, batch."""

    n_train: int = 512
    n_test: int = 50
    epochs: int = 2
    batch_size: int = 16

    @classmethod
    def quick(cls) -> Budget:
        return cls(n_train=128, n_test=24)


def load_model(recipe: Recipe) -> Any:
    """The causal LM of ``recipe.model``: loaded with its LoRA and dtype options (``auto``: the checkpoint's
    own), on its device (:func:`resolve_device`)."""
    import torch

    from retain.models.loading import load_adapter

    spec = recipe.model
    dtype = "auto" if spec.dtype == "auto" else getattr(torch, spec.dtype)
    adapter = load_adapter(spec.path, lora=spec.lora, lora_r=spec.lora_r, lora_alpha=spec.lora_alpha, dtype=dtype,
                           trust_remote_code=spec.trust_remote_code, attn_implementation=spec.attn_implementation,
                           max_prompt_tokens=spec.max_prompt_tokens, max_new_tokens=spec.max_new_tokens)
    device = resolve_device(spec.device)
    if device.type != "cpu":
        adapter.model.to(device)
    return adapter


def resolve_device(name: str) -> Any:
    """``cpu``, or this process's accelerator: under ``accelerate launch``/``torchrun`` the local rank's GPU.

    ``auto`` picks CUDA, else MPS, else the CPU (Accelerate's own order, so Apple machines use MPS); asking
    for ``cuda`` or ``mps`` where there is none is an error naming ``--device``.
    """
    import torch

    from retain.errors import RetainError
    from retain.train.loop import process_state

    if name == "cpu":
        return torch.device("cpu")
    device = process_state(name).device
    if name != "auto" and device.type != name:
        raise RetainError(f"{name} is not available on this machine (found {device.type})", field="--device")
    return device


def skill_task(skill: Skill, *, train: bool = True) -> Task:
    """A task trained on ``skill.train`` (unless ``train`` is false: a probe) and scored on ``skill.test``."""
    from retain.evaluate.evaluation import accuracy

    return Task(skill.name, list(skill.train) if train else [], lambda adapter: accuracy(adapter, skill))


def skills_scenario(name: str, stream: list[Skill], probes: list[Skill] | None = None) -> Scenario:
    """Learn ``stream`` in order; score every skill of it and every probe after each one."""
    return Scenario("language", name, "new skills + prior-skill probes", [skill_task(s) for s in stream],
                    load_model, probes=[skill_task(p, train=False) for p in probes or []])


def demo_skills(budget: Budget, seed: int, split: str = "test") -> tuple[list[Skill], list[Skill]]:
    """The demo's new skills for ``seed`` and its probes; ``val`` draws both from the validation seed."""
    from retain.data.synthetic import new_skills, probe_skills

    if split == "val":
        return (new_skills(n_train=budget.n_train, n_test=budget.n_test, seed=VALIDATION_SEED + seed),
                probe_skills(n_test=budget.n_test, seed=VALIDATION_SEED))
    return new_skills(n_train=budget.n_train, n_test=budget.n_test, seed=seed), probe_skills(n_test=budget.n_test)


def demo_stream(budget: Budget, seed: int, split: str = "test") -> Scenario:
    """``retain demo``'s scenario: three new skills, watched through the embedded model's prior-skill probes."""
    stream, probes = demo_skills(budget, seed, split)
    return skills_scenario("demo-stream", stream, probes)


def embedded_sdft_options(teacher: str = "ema", **extra: Any) -> dict[str, Any]:
    """SDFT's options on the embedded model: :data:`EMBEDDED_SDFT`, the teacher, then ``extra``."""
    return {**{k: v for k, (v, _) in EMBEDDED_SDFT.items()}, "teacher": teacher, **extra}


def demo_recipe(method: str, seed: int, budget: Budget, *, lr: float | None = None,
                options: dict[str, dict[str, Any]] | None = None, teacher: str = "ema",
                sdft: dict[str, Any] | None = None) -> Recipe:
    """The recipe of one demo run on the embedded model: the budget's passes and batch, the embedded model's
    learning rate unless ``lr``, and its SDFT settings when the method trains with SDFT."""
    options = {name: dict(values) for name, values in (options or {}).items()}
    if "sdft" in method.lower().split("+"):
        options["sdft"] = embedded_sdft_options(teacher, **{**options.get("sdft", {}), **(sdft or {})})
    return Recipe.for_model(EMBEDDED, method, seed=seed, options=options, lr=lr, epochs=budget.epochs,
                            batch_size=budget.batch_size)
