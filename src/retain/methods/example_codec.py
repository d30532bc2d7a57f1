"""Stored examples (replay's buffer, joint's union) as tensors plus JSON, for a plugin's state between runs.

An example is encoded by shape, not pickled: texts and numbers go to JSON as they are, tuples and lists are
tagged so they come back as what they were, tensors go to the tensor side under a numbered key, and the two
example types the domains use (:class:`retain.data.skills.Example`, :class:`retain.models.classifier.Labeled`)
are rebuilt from their fields. Nothing is imported by a name read from the file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from retain.data.skills import Example
from retain.models.classifier import Labeled

EXAMPLE_TYPES: dict[str, type] = {"Example": Example, "Labeled": Labeled}


def encode(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """The JSON form of ``value``; its tensors are added to ``tensors`` under keys starting with ``prefix``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = value.detach().contiguous().clone()
        return {"tensor": key}
    if isinstance(value, (list, tuple)):
        return {type(value).__name__: [encode(v, tensors, prefix) for v in value]}
    name = type(value).__name__
    if EXAMPLE_TYPES.get(name) is type(value):
        return {"example": name, "fields": {f.name: encode(getattr(value, f.name), tensors, prefix)
                                            for f in dataclasses.fields(value)}}
    raise TypeError(f"cannot store a {name} example (known: {', '.join(EXAMPLE_TYPES)}, tensors, texts, numbers)")


def decode(form: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The value :func:`encode` turned into ``form``."""
    if not isinstance(form, dict):
        return form
    if "tensor" in form:
        return tensors[form["tensor"]].clone()
    if "list" in form:
        return [decode(v, tensors) for v in form["list"]]
    if "tuple" in form:
        return tuple(decode(v, tensors) for v in form["tuple"])
    cls = EXAMPLE_TYPES[form["example"]]
    return cls(**{name: decode(v, tensors) for name, v in form["fields"].items()})


def encode_examples(examples: list[Any], prefix: str) -> tuple[dict[str, torch.Tensor], list[Any]]:
    tensors: dict[str, torch.Tensor] = {}
    return tensors, [encode(e, tensors, prefix) for e in examples]
