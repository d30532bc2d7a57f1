"""Method names, as the CLI and the Python API spell them, and how a spec like ``sdft+ewc+replay`` is built.

The registry holds the method classes themselves, keyed by their ``name``. Each carries its typed ``Config``
(checked when the method is built, :mod:`retain.methods.base`); options arrive as ``{"ewc": {"lam": "100"}}``,
strings from the command line are turned into the field's type here, and an unknown method or key is a
:class:`RetainError` naming it.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from retain.errors import RetainError
from retain.methods.base import Consolidation, Objective, check_config, type_name
from retain.methods.drift import Drift
from retain.methods.ewc import EWC
from retain.methods.joint import Joint
from retain.methods.kfac import KFAC
from retain.methods.l2 import L2
from retain.methods.mas import MAS
from retain.methods.merge import Merge
from retain.methods.rehearsal import Rehearsal
from retain.methods.replay import Replay
from retain.methods.sdft import SDFT
from retain.methods.sft import SFT
from retain.methods.si import SI

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (SFT, SDFT)}
CONSOLIDATIONS: dict[str, type[Consolidation]] = {cls.name: cls for cls in (EWC, KFAC, SI, MAS, L2, Replay, Rehearsal, Joint,
                                                                      Merge, Drift)}

_FALSE, _TRUE = ("false", "0", "no"), ("true", "1", "yes")


def _coerce(value: Any, annotation: Any, field: str) -> Any:
    """Turn a command-line string into the field's declared type (``float``, ``int``, ``bool``, ``x | None``)."""
    arms = typing.get_args(annotation) or (annotation,)
    optional = type(None) in arms
    base = next((arm for arm in arms if arm is not type(None)), str)
    if not isinstance(value, str):
        return value  # typed values (Python callers, stored recipes) are checked when the method is built
    if optional and value.lower() in ("none", "null", ""):
        return None
    try:
        if base is bool:
            if value.lower() not in _FALSE + _TRUE:
                raise ValueError(value)
            return value.lower() in _TRUE
        if base in (int, float):
            return base(value)
    except ValueError:
        raise RetainError(f"must be {type_name(annotation)}, got {value!r}", field=field) from None
    return value


def make_config(cls: type, options: dict[str, Any], field_prefix: str | None = None) -> Any:
    """Build and check ``cls.Config`` from ``options``; unknown keys and bad values are user errors."""
    prefix = field_prefix or cls.name
    hints = typing.get_type_hints(cls.Config)
    known = {f.name for f in dataclasses.fields(cls.Config)}
    for key in options:
        if key not in known:
            raise RetainError(f"unknown option (known: {', '.join(sorted(known)) or 'none'})",
                              field=f"{prefix}.{key}")
    config = cls.Config(**{key: _coerce(value, hints[key], f"{prefix}.{key}") for key, value in options.items()})
    check_config(prefix, config)
    return config


def parse_method(spec: str, options: dict[str, dict[str, Any]] | None = None,
                 default_objective: str = "sft") -> tuple[Objective, list[Consolidation]]:
    """Turn ``"sdft+ewc+replay"`` into one objective and a list of consolidation plugins.

    A spec with no objective (``"ewc"``) trains with ``default_objective``.
    """
    options = dict(options or {})
    names = [n.strip().lower() for n in spec.split("+")]
    known = sorted(OBJECTIVES) + sorted(CONSOLIDATIONS)
    for name in names:
        if name not in OBJECTIVES and name not in CONSOLIDATIONS:
            raise RetainError(f"unknown method {name!r} in {spec!r} (known: {', '.join(known)})", field="method")
    if len(names) != len(set(names)):
        raise RetainError(f"a method appears twice in {spec!r}", field="method")
    objectives = [n for n in names if n in OBJECTIVES]
    if len(objectives) > 1:
        raise RetainError(f"{spec!r} names two training objectives ({' and '.join(objectives)}); pick one",
                          field="method")
    for key in options:
        if key not in names and not (key == default_objective and not objectives):
            raise RetainError(f"options given for {key!r}, which {spec!r} does not use", field="method")
    objective_cls = OBJECTIVES[objectives[0] if objectives else default_objective]
    objective = objective_cls(make_config(objective_cls, options.get(objective_cls.name, {})))
    plugins = [CONSOLIDATIONS[name](make_config(CONSOLIDATIONS[name], options.get(name, {})))
               for name in names if name in CONSOLIDATIONS]
    return objective, plugins


def typed_options(spec: str, options: dict[str, dict[str, Any]],
                  chosen: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``chosen`` (some of ``options``, e.g. what ``--set`` gave as strings) as the methods of ``spec`` read them
    when built with ``options``: ``{"rehearsal": {"ratio": "2"}}`` -> ``{"rehearsal": {"ratio": 2.0}}``."""
    objective, plugins = parse_method(spec, options)
    configs = {method.name: method.config for method in (objective, *plugins)}
    return {name: {key: getattr(configs[name], key) for key in values} for name, values in chosen.items()}
