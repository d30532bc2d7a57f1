"""Method names, as the CLI and the Python API spell them, and how a spec like ``sdft+ewc+replay`` is built.

Each method class carries its typed ``Config`` dataclass (TRL-style: a method's knobs live next to its code);
options arrive as ``{"ewc": {"lam": 100.0}}`` and an unknown method or key is a :class:`RetainError`.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from retain.errors import RetainError
from retain.methods.base import Consolidation, Objective

OBJECTIVES = {
    "sft": "retain.methods.sft:SFT",
    "sdft": "retain.methods.sdft:SDFT",
}
CONSOLIDATIONS = {
    "ewc": "retain.methods.ewc:EWC",
    "si": "retain.methods.si:SI",
    "mas": "retain.methods.mas:MAS",
    "l2": "retain.methods.l2:L2",
    "replay": "retain.methods.replay:Replay",
    "joint": "retain.methods.joint:Joint",
}


def _load(path: str) -> type:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _coerce(value: Any, spec: dataclasses.Field, field: str) -> Any:
    """Turn a command-line string into the field's declared type (``float``, ``int``, ``bool``, ``x | None``)."""
    kind = spec.type if isinstance(spec.type, str) else getattr(spec.type, "__name__", str(spec.type))
    optional = "None" in kind
    base = kind.replace("| None", "").replace("None |", "").strip()
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
        return None
    try:
        if base == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if base == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base == "float":
            return float(value)
    except (TypeError, ValueError):
        raise RetainError(f"must be {base}{' or none' if optional else ''}, got {value!r}", field=field) from None
    return value


def make_config(cls: type, options: dict[str, Any], field_prefix: str) -> Any:
    """Build ``cls.Config`` from ``options``; unknown keys and bad values are user errors."""
    config_cls = cls.Config
    known = {f.name: f for f in dataclasses.fields(config_cls)}
    for key in options:
        if key not in known:
            raise RetainError(f"unknown option (known: {', '.join(sorted(known))})", field=f"{field_prefix}.{key}")
    config = config_cls(**{key: _coerce(value, known[key], f"{field_prefix}.{key}") for key, value in options.items()})
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
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
    objective_name = objectives[0] if objectives else default_objective
    objective_cls = _load(OBJECTIVES[objective_name])
    objective = objective_cls(make_config(objective_cls, options.get(objective_name, {}), objective_name))
    plugins = []
    for name in names:
        if name in CONSOLIDATIONS:
            cls = _load(CONSOLIDATIONS[name])
            plugins.append(cls(make_config(cls, options.get(name, {}), name)))
    return objective, plugins
