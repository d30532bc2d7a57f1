"""A recipe: everything needed to repeat a run, typed, validated, and written by itself.

``Recipe`` = the model and how it is loaded (:class:`ModelSpec`), the method spec (``sdft+ewc+replay``), each
method's options, the training config of every task (:class:`retain.train.loop.TrainConfig`) and the seed.
The ledger stores :meth:`Recipe.to_dict` (every method option resolved, so a later change of a default does
not change what a version means) and rebuilds it with :meth:`Recipe.from_dict` to reproduce.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from retain.errors import RetainError, check
from retain.train.loop import TrainConfig

EMBEDDED = "embedded"
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda", "mps")
# SDFT's paper trains 7B models at 5e-6..5e-5 with full fine-tuning; LoRA adapters take about 10x that.
PAPER_LR = 1e-5
LORA_LR_FACTOR = 10.0
# Method options for causal LMs that differ from the methods' own defaults (applied unless set; the recipe
# records the values used). The exact Fisher costs one backward pass per vocabulary entry per token (13 min and
# 3.9 GB on a 98k-parameter model with a 589-token vocabulary); the sampled one costs ``fisher_samples``
# backward passes of one example each, whatever the vocabulary. Per-prediction gradients (EWC, MAS) hold one
# gradient per token of a chunk at once, so a chunk is one example (64 examples of the embedded model's
# answers took 18 GB).
CAUSAL_LM_OPTIONS: dict[str, dict[str, Any]] = {
    "ewc": {"fisher": "sampled", "fisher_samples": 64, "batch_size": 1},
    "mas": {"samples": 64, "batch_size": 1},
}
# The largest seed every random source accepts (NumPy takes 32 bits; torch and Python take 64).
MAX_SEED = 2**63 - 1


def default_lr(model: str, lora: bool) -> float:
    """The paper's learning rate for outside models; the embedded model's own tuned rate for it."""
    from retain.models.tiny.build import EMBEDDED_FINETUNE_LR

    base = EMBEDDED_FINETUNE_LR if model == EMBEDDED else PAPER_LR
    return base * (LORA_LR_FACTOR if lora else 1.0)


def with_defaults(method: str, options: dict[str, dict[str, Any]] | None,
                  defaults: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A copy of ``options`` with ``defaults`` under it, for each method the spec ``method`` names (a default
    for a method it does not use is left out: options for an unused method are an error)."""
    out = {name: dict(values) for name, values in (options or {}).items()}
    names = [name.strip().lower() for name in method.split("+")]
    for name, values in defaults.items():
        if name in names:
            out[name] = {**values, **out.get(name, {})}
    return out


def check_seed(seed: Any, field_name: str = "seed") -> int:
    """``seed`` as an int in [0, 2**63 - 1], the range every random source of a run accepts."""
    check(isinstance(seed, int) and not isinstance(seed, bool), f"must be an integer, got {seed!r}", field=field_name)
    check(0 <= seed <= MAX_SEED, f"must be between 0 and {MAX_SEED}, got {seed}", field=field_name)
    return seed


@dataclass
class ModelSpec:
    """Which model a run starts from and how it is loaded.

    ``path`` is ``embedded`` or a local Hugging Face causal-LM folder (for vision and control scenarios, a
    description of the network the scenario builds). ``dtype`` ``auto`` keeps the checkpoint's dtype (a
    bfloat16 checkpoint trains and saves as bfloat16; the embedded model is float32). ``device`` ``auto`` is
    this process's accelerator (CUDA, else MPS) when there is one, else the CPU. ``path`` may also be a hub id
    in the local cache; ``trust_remote_code`` and ``attn_implementation`` go to ``from_pretrained``;
    ``max_prompt_tokens`` and ``max_new_tokens`` are the length limits (None: from the model's positions, see
    :mod:`retain.models.causal_lm`).
    """

    path: str = EMBEDDED
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    max_prompt_tokens: int | None = None
    max_new_tokens: int | None = None

    def validate(self) -> None:
        check(bool(self.path), "must name a model", field="model")
        check(self.lora_r >= 1, f"must be >= 1, got {self.lora_r}", field="model.lora_r")
        check(self.lora_alpha >= 1, f"must be >= 1, got {self.lora_alpha}", field="model.lora_alpha")
        check(self.dtype in DTYPES, f"must be one of {', '.join(DTYPES)}, got {self.dtype!r}", field="model.dtype")
        check(self.device in DEVICES, f"must be one of {', '.join(DEVICES)}, got {self.device!r}",
              field="model.device")
        for name in ("max_prompt_tokens", "max_new_tokens"):
            value = getattr(self, name)
            check(value is None or (isinstance(value, int) and value >= 1), f"must be >= 1, got {value!r}",
                  field=f"model.{name}")


@dataclass
class Recipe:
    """Everything a run needs besides its data: model, method, method options, training, seed."""

    model: ModelSpec = field(default_factory=ModelSpec)
    method: str = "sdft"
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0

    @classmethod
    def for_model(cls, model: str = EMBEDDED, method: str = "sdft", *, lora: bool = False, seed: int = 0,
                  options: dict[str, dict[str, Any]] | None = None, lr: float | None = None,
                  spec: dict[str, Any] | None = None, **train: Any) -> Recipe:
        """A recipe for a causal LM: the model's default learning rate unless ``lr`` is given, the causal-LM
        method defaults (:data:`CAUSAL_LM_OPTIONS`) under ``options``; ``spec`` are further ModelSpec fields
        (``dtype``, ``device``, ...); ``train`` are TrainConfig fields (``epochs``, ``batch_size``,
        ``grad_accum``, ...)."""
        lr = default_lr(model, lora) if lr is None else lr
        options = with_defaults(method, options, CAUSAL_LM_OPTIONS)
        recipe = cls(model=ModelSpec(path=model, lora=lora, **(spec or {})), method=method, options=options,
                     train=TrainConfig(lr=lr, seed=seed, **train), seed=seed)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        """Raise a :class:`RetainError` naming the field for anything a run would reject later."""
        self.model.validate()
        check_seed(self.seed)
        self.train.validate()
        self.methods()

    def methods(self) -> tuple[Any, list[Any]]:
        """A fresh objective and fresh consolidation plugins, configured by ``options``."""
        from retain.methods.registry import parse_method

        return parse_method(self.method, self.options)

    def method_names(self) -> list[str]:
        return [name.strip().lower() for name in self.method.split("+")]

    def to_dict(self) -> dict[str, Any]:
        """The recipe as JSON-able data, every method option resolved to its value."""
        objective, plugins = self.methods()
        resolved = {objective.name: asdict(objective.config), **{p.name: asdict(p.config) for p in plugins}}
        return {"model": asdict(self.model), "method": self.method, "options": resolved,
                "train": asdict(self.train), "seed": self.seed}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "recipe") -> Recipe:
        """Rebuild a recipe written by :meth:`to_dict`; unknown keys are errors naming ``source``."""
        if not isinstance(data, dict):
            raise RetainError("must be an object", field=source)
        _known(data, {"model", "method", "options", "train", "seed"}, source)
        model = data.get("model", {})
        train = data.get("train", {})
        _known(model, {f.name for f in fields(ModelSpec)}, f"{source}.model")
        _known(train, {f.name for f in fields(TrainConfig)}, f"{source}.train")
        recipe = cls(model=ModelSpec(**model), method=data.get("method", "sdft"),
                     options={k: dict(v) for k, v in data.get("options", {}).items()},
                     train=TrainConfig(**train), seed=data.get("seed", 0))
        recipe.validate()
        return recipe


def _known(data: Any, allowed: set[str], source: str) -> None:
    if not isinstance(data, dict):
        raise RetainError("must be an object", field=source)
    for key in data:
        if key not in allowed:
            raise RetainError(f"unknown key (known: {', '.join(sorted(allowed))})", field=f"{source}.{key}")

