"""``merge`` (WiSE-FT): after each task the weights are the interpolation of the task-start and the trained
weights; other plugins record the merged model; it needs nothing to protect."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from retain.errors import RetainError
from retain.methods.ewc import EWC
from retain.methods.merge import Merge
from retain.methods.registry import parse_method
from retain.methods.sft import SFT
from retain.models.classifier import ClassifierAdapter, Labeled
from retain.train.loop import TrainConfig, train_task

EXAMPLES = [Labeled(torch.tensor([float(i % 3), 1.0]), i % 3) for i in range(12)]


def _trained(plugins: list, seed: int = 0) -> tuple[dict, dict, ClassifierAdapter]:
    torch.manual_seed(seed)
    adapter = ClassifierAdapter(nn.Linear(2, 3))
    start = copy.deepcopy(adapter.model.state_dict())
    train_task(adapter, SFT(), plugins, EXAMPLES, TrainConfig(epochs=2, batch_size=4, lr=0.1))
    return start, adapter.model.state_dict(), adapter


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0])
def test_the_kept_weights_are_the_interpolation(alpha: float) -> None:
    start, plain, _ = _trained([])
    _, merged, _ = _trained([Merge(Merge.Config(alpha=alpha))])
    for name in start:
        expected = start[name] + alpha * (plain[name] - start[name])
        assert torch.allclose(merged[name], expected, atol=1e-6), name
    assert any(not torch.equal(merged[n], plain[n]) for n in start) == (alpha < 1)


def test_ewc_anchors_at_the_merged_model_whatever_the_spec_order() -> None:
    for order in ("ewc_first", "merge_first"):
        ewc, merge = EWC(EWC.Config(lam=1.0)), Merge(Merge.Config(alpha=0.5))
        _, merged, _ = _trained([ewc, merge] if order == "ewc_first" else [merge, ewc])
        (anchor, _), = ewc.tasks
        for name, value in anchor.items():
            assert torch.equal(value, merged[name]), (order, name)


def test_merge_needs_no_prior_data_and_checks_alpha() -> None:
    from retain.api import check_protection
    from retain.recipe import Recipe

    _, plugins = parse_method("sdft+merge", {"merge": {"alpha": "0.7"}})
    assert plugins[0].config.alpha == 0.7 and not plugins[0].needs_prior
    check_protection(Recipe.for_model("embedded", "sdft+merge"), [])  # a single learn needs no --protect
    with pytest.raises(RetainError, match="ewc has nothing to protect"):
        check_protection(Recipe.for_model("embedded", "sdft+merge+ewc"), [])
    for bad in ("0", "1.5"):
        with pytest.raises(RetainError) as err:
            parse_method("sdft+merge", {"merge": {"alpha": bad}})
        assert err.value.field == "merge.alpha"
