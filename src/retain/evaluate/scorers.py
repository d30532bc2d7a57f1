"""Scorers decide whether a model's answer matches the reference. Pluggable by name or ``module:function``."""

from __future__ import annotations

import importlib
import inspect
import numbers
import re
from typing import Callable

from retain.errors import RetainError

Scorer = Callable[[str, str], float]

# The answer a module:function scorer is tried on before it is used.
TRIAL = "42"

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
    """A scorer by registered name, or any importable ``package.module:function``.

    An imported function must behave like a scorer before anything is trained: take ``(prediction,
    reference)`` and return a number from 0 to 1 (checked with one trial call), else :class:`RetainError`.
    """
    if name in SCORERS:
        return SCORERS[name]
    if ":" in name:
        module, attr = name.split(":", 1)
        try:
            return _checked(name, getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError, ValueError) as err:
            raise RetainError(f"cannot import scorer {name!r} ({err})", field="scorer") from None
    raise RetainError(f"unknown scorer {name!r} (known: {', '.join(SCORERS)}, or module:function)",
                      field="scorer")


def _checked(name: str, scorer: object) -> Scorer:
    """``scorer`` if it is a callable of ``(prediction, reference)`` returning a number from 0 to 1."""
    if not callable(scorer):
        raise RetainError(f"{name!r} is not a function", field="scorer")
    try:
        inspect.signature(scorer).bind("", "")
    except TypeError:
        raise RetainError(f"{name!r} must take two arguments (prediction, reference)", field="scorer") from None
    except ValueError:
        pass  # a builtin without a signature: the trial call decides
    try:
        value = scorer(TRIAL, TRIAL)
    except Exception as err:  # whatever the user's code raises, the scorer is unusable
        raise RetainError(f"{name!r} failed on a trial answer ({type(err).__name__}: {err})", field="scorer") from None
    if isinstance(value, numbers.Real) and 0 <= value <= 1:
        return scorer
    raise RetainError(f"{name!r} must return a number from 0 to 1, got {value!r}", field="scorer")
