"""The two kinds of method, their typed configs, and the state a consolidation plugin keeps between runs.

An *objective* (``sft``, ``sdft``) makes the training loss of one batch. A *consolidation* method (``ewc``,
``si``, ``mas``, ``l2``, ``replay``, ``joint``) changes training through a few hooks, Avalanche-style
(``before_task``, a ``penalty`` term, ``after_backward``/``after_step``, ``after_task``), so that
``sdft+ewc+replay`` composes without new code. Methods never touch model internals: they go through an
:class:`retain.models.adapter.Adapter`.

**Configs.** Every method has a nested ``Config`` dataclass (TRL-style: a method's knobs live next to its code)
whose ``problems()`` yields ``(field, message)`` for each bad value. :class:`Method` checks the config when the
method is built, field types first, and names the field from the method's name (``sdft.teacher``), so a bad
value is one located :class:`RetainError` however the method was made (CLI, Python, a stored recipe).

**State between runs.** A consolidation plugin's memory of earlier tasks (importances, anchors, rehearsal
buffers) is saved and restored through one pair of calls, so a home can version it with each champion:

- ``state_dict() -> dict[str, torch.Tensor]``: the tensors (safetensors-ready: string keys, contiguous,
  not shared);
- ``extra_state() -> dict``: everything else, JSON-serialisable (counters, texts, random-generator state);
- ``load_state(tensors, extra)``: restore both into a plugin built with the same config; afterwards its
  penalty, gradient, mixing and next-task behaviour are those of the plugin that was saved.

State held only while a task trains (SI's running path integral, SDFT's teacher) is not part of it.
"""

from __future__ import annotations

import dataclasses
import random
import types
import typing
from typing import Any, ClassVar, Iterator

import torch

from retain.errors import RetainError
from retain.models.adapter import Adapter


@dataclasses.dataclass
class NoOptions:
    """The config of a method with nothing to tune."""

    def problems(self) -> Iterator[tuple[str, str]]:
        return iter(())


def _accepts(value: Any, annotation: Any) -> bool:
    """Whether ``value`` fits a simple annotation (``int``, ``float``, ``bool``, ``str``, ``X | None``)."""
    if annotation is Any:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_accepts(value, arm) for arm in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def type_name(annotation: Any) -> str:
    """``float``, ``int or none``: how a field's type reads in an error message."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return " or ".join("none" if arm is type(None) else type_name(arm) for arm in typing.get_args(annotation))
    return getattr(annotation, "__name__", str(annotation))


def check_config(method: str, config: Any) -> None:
    """Raise a :class:`RetainError` naming ``<method>.<field>`` for the first ill-typed or out-of-range field."""
    if dataclasses.is_dataclass(config):
        hints = typing.get_type_hints(type(config))
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if not _accepts(value, hints.get(f.name, Any)):
                raise RetainError(f"must be {type_name(hints[f.name])}, got {value!r}", field=f"{method}.{f.name}")
    for name, message in config.problems():
        raise RetainError(message, field=f"{method}.{name}")


class Method:
    """A named method with a typed ``Config``, checked when the method is built."""

    name: ClassVar[str] = "method"
    Config: ClassVar[type] = NoOptions

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{type(self).__name__} takes a {type(self).__name__}.Config, got {type(config).__name__}")
        check_config(self.name, self.config)


class Objective(Method):
    """Makes the loss of one batch. Subclasses: ``sft`` (cross-entropy on targets), ``sdft``."""

    name = "objective"

    def check_examples(self, adapter: Adapter, examples: list[Any]) -> None:
        """Called before training on a task: raise a :class:`RetainError` if these examples cannot train."""

    def token_stats(self) -> dict[str, int]:
        """Completion tokens seen (``total``) and trained on (``trained``) so far; an objective that trains on
        every target token counts none."""
        return {"trained": 0, "total": 0}

    def before_task(self, adapter: Adapter) -> None:
        """Called once before a task's first step."""

    def loss(self, adapter: Adapter, batch: list[Any]) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, adapter: Adapter) -> None:
        """Called after every optimiser step (the EMA teacher moves here)."""

    def after_task(self, adapter: Adapter) -> None:
        """Called once after a task's last step (state held only for training is released here)."""

    def memory_bytes(self) -> int:
        return 0


class Consolidation(Method):
    """A plugin that protects earlier tasks. Every hook is optional; so is state (a plugin without any keeps
    the empty defaults below)."""

    name = "consolidation"
    # whether it protects data named before the first task (``--prior``, a home's suite); one that does
    # not (``merge``) is complete without any
    needs_prior = True
    # whether its ``after_task`` runs before the other plugins' (``merge`` changes the weights they record)
    first_after_task = False
    # whether it needs the gradient of each prediction on its own, which FSDP's sharded parameters never get
    per_prediction_gradients = False

    def training_set(self, examples: list[Any]) -> list[Any]:
        """The examples to train on for this task (``joint`` returns every task seen so far)."""
        return examples

    def before_task(self, adapter: Adapter) -> None:
        """Called once before a task's first step."""

    def mix(self, batch: list[Any], rng: random.Random) -> list[Any]:
        """The batch actually trained on (``replay`` adds stored examples of earlier tasks)."""
        return batch

    def penalty(self, adapter: Adapter) -> torch.Tensor | None:
        """A term added to the loss that depends on the weights only, or None."""
        return None

    def draw(self, batch: list[Any], rng: random.Random) -> list[Any]:
        """Examples this plugin trains on beside the objective at this step (given back to
        :meth:`drawn_loss`), drawn with the step's ``rng`` once every plugin has mixed the batch; none by
        default (rehearsal's ``target=ce`` draws its rehearsed examples here)."""
        return []

    def drawn_loss(self, adapter: Adapter, drawn: list[Any]) -> torch.Tensor | None:
        """A term added to the loss for the examples :meth:`draw` returned at this step (never empty), or None."""
        return None

    def lr_factor(self) -> float:
        """A multiplier on the learning rate the schedule gives, read at every step (``drift`` lowers it when
        the prior skills move); 1 by default."""
        return 1.0

    def after_backward(self, adapter: Adapter) -> None:
        """Gradients are in ``.grad``, the step has not been taken."""

    def after_step(self, adapter: Adapter) -> None:
        """The optimiser step has been taken."""

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        """The task is learned: estimate importances, store anchors, fill buffers."""

    def protect(self, adapter: Adapter, examples: list[Any]) -> None:
        """Before any task: treat ``examples`` (what the model already knows: ``--prior`` data, a home's
        suite) as a task it has learned, so the first new task is already held back from forgetting them."""
        self.after_task(adapter, examples)

    def memory_bytes(self) -> int:
        """Bytes this method holds beyond the model: importances, anchors, buffers."""
        return 0

    def held(self) -> str:
        """What the state holds, in a few words for a learn's protection note ('' when nothing to say)."""
        return ""

    # -- state kept between runs (see the module docstring) ------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors of this plugin's memory of earlier tasks."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        """The rest of that memory, JSON-serialisable."""
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` and :meth:`extra_state` returned."""
        if tensors or extra:
            raise ValueError(f"{self.name} keeps no state, but state was given")


def tensor_bytes(tensors: dict[str, torch.Tensor] | list[torch.Tensor]) -> int:
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return sum(t.numel() * t.element_size() for t in values)
