"""Consolidation methods through the registry: names compose, bad options are located user errors."""

from __future__ import annotations

import pytest

from retain.errors import RetainError
from retain.methods.ewc import EWC
from retain.methods.joint import Joint
from retain.methods.l2 import L2
from retain.methods.mas import MAS
from retain.methods.registry import parse_method
from retain.methods.replay import Replay
from retain.methods.si import SI
from retain.methods.sft import SFT


def test_specs_compose_in_order() -> None:
    objective, plugins = parse_method("sft+ewc+replay", {"ewc": {"lam": 5.0, "mode": "online"}})
    assert isinstance(objective, SFT)
    assert [type(p) for p in plugins] == [EWC, Replay]
    assert plugins[0].config.lam == 5.0 and plugins[0].config.mode == "online"
    _, plugins = parse_method("si+mas+l2+joint")
    assert [type(p) for p in plugins] == [SI, MAS, L2, Joint]
    assert [p.name for p in plugins] == ["si", "mas", "l2", "joint"]


@pytest.mark.parametrize("spec, options, field", [
    ("sft+ewc", {"ewc": {"lam": -1.0}}, "ewc.lam"),
    ("sft+ewc", {"ewc": {"mode": "sometimes"}}, "ewc.mode"),
    ("sft+ewc", {"ewc": {"gamma": 0.0}}, "ewc.gamma"),
    ("sft+ewc", {"ewc": {"fisher": "batched"}}, "ewc.fisher"),
    ("sft+ewc", {"ewc": {"fisher_samples": 0}}, "ewc.fisher_samples"),
    ("sft+ewc", {"ewc": {"lamda": 1.0}}, "ewc.lamda"),
    ("sft+kfac", {"kfac": {"lam": -1.0}}, "kfac.lam"),
    ("sft+kfac", {"kfac": {"gamma": 1.5}}, "kfac.gamma"),
    ("sft+kfac", {"kfac": {"rest": "everything"}}, "kfac.rest"),
    ("sft+si", {"si": {"c": -0.5}}, "si.c"),
    ("sft+si", {"si": {"xi": 0.0}}, "si.xi"),
    ("sft+mas", {"mas": {"lam": -2.0}}, "mas.lam"),
    ("sft+l2", {"l2": {"lam": -2.0}}, "l2.lam"),
    ("sft+replay", {"replay": {"size": 0}}, "replay.size"),
    ("sft+replay", {"replay": {"ratio": 0.0}}, "replay.ratio"),
    ("sft+joint", {"joint": {"size": 3}}, "joint.size"),
    ("sft+ewc+elastic", None, "method"),
])
def test_bad_methods_and_options_are_user_errors(spec: str, options: dict | None, field: str) -> None:
    with pytest.raises(RetainError) as err:
        parse_method(spec, options)
    assert err.value.field == field


def test_configs_validate_when_built_directly() -> None:
    with pytest.raises(RetainError):
        EWC(EWC.Config(lam=-1.0))
    with pytest.raises(RetainError):
        Replay(Replay.Config(size=0))


def test_the_registry_holds_classes_and_fields_are_named_from_the_method() -> None:
    from retain.methods.registry import CONSOLIDATIONS, OBJECTIVES

    assert all(isinstance(cls, type) and cls.name == name for name, cls in {**OBJECTIVES, **CONSOLIDATIONS}.items())
    for method, config, field in ((EWC, EWC.Config(lam="big"), "ewc.lam"), (SI, SI.Config(xi=-1.0), "si.xi"),
                                  (MAS, MAS.Config(samples=1.5), "mas.samples"), (L2, L2.Config(lam=None), "l2.lam"),
                                  (SFT, SFT.Config(label_smoothing=1.0), "sft.label_smoothing")):
        with pytest.raises(RetainError) as err:
            method(config)
        assert err.value.field == field
    with pytest.raises(TypeError):
        EWC(SI.Config())
    assert Joint().config == Joint.Config()
