"""Scorers decide whether a model's answer matches the reference. Pluggable by name or ``module:function``."""

from __future__ import annotations

import importlib
import re
from typing import Callable

from retain.errors import RetainError

Scorer = Callable[[str, str], float]

_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")


def exact(prediction: str, reference: str) -> float:
    """1.0 when the answer equals the reference up to surrounding whitespace."""
    return float(prediction.strip() == reference.strip())


def alnum(prediction: str, reference: str) -> float:
    """1.0 when the letters and digits match in order, case-sensitively; separators and spacing do not count.

    This is the scorer of the demo's skills: an expert who writes ``z-y-x`` and a model that writes ``zyx``
    give the same answer.
    """
    return float(_NOT_ALNUM.sub("", prediction) == _NOT_ALNUM.sub("", reference))


SCORERS: dict[str, Scorer] = {"exact": exact, "alnum": alnum}


def get_scorer(name: str) -> Scorer:
    """A scorer by registered name, or any importable ``package.module:function``."""
    if name in SCORERS:
        return SCORERS[name]
    if ":" in name:
        module, attr = name.split(":", 1)
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise RetainError(f"cannot import scorer {name!r} ({err})", field="scorer") from None
    raise RetainError(f"unknown scorer {name!r} (known: {', '.join(SCORERS)}, or module:function)",
                      field="scorer")
