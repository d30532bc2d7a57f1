"""The drift-controlled learning rate: ``boost`` times the rate until the protected prompts' cross-entropy rises
``tolerance`` above its start, then ``factor`` times less each time, never under ``floor``."""

from __future__ import annotations

import pytest
import torch

from retain.data.skills import Example
from retain.errors import RetainError
from retain.methods.drift import Drift
from retain.methods.registry import parse_method
from retain.methods.sft import SFT
from retain.train.loop import TrainConfig, train_task

KNOWN = [Example(prompt=f"reverse {w}", demonstration=w[::-1])
         for w in ("abc", "dog", "moon", "tree", "lamp", "fish", "sand", "rope")]
# a task that conflicts with what the model knows: "reverse" now copies
CONFLICT = [Example(prompt=f"reverse {w}", demonstration=w) for w in ("cat", "sun", "leaf", "bird", "wind", "pear",
                                                                     "hill", "rain")]


def _weights(adapter):
    return {k: v.detach().clone() for k, v in adapter.model.state_dict().items()}


def test_an_unreached_tolerance_trains_exactly_as_the_boosted_rate(embedded_lm):
    from retain.models.loading import load_adapter

    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-4, seed=0)
    drift = Drift(Drift.Config(boost=2.0, tolerance=1e9, every=1))
    drift.protect(embedded_lm, KNOWN)
    train_task(embedded_lm, SFT(), [drift], CONFLICT, cfg)
    plain = load_adapter("embedded")
    train_task(plain, SFT(), [], CONFLICT, TrainConfig(epochs=1, batch_size=4, lr=2e-4, seed=0))
    got, want = _weights(embedded_lm), _weights(plain)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert [d["multiplier"] for d in drift.trace()] == [2.0, 2.0, 2.0]


def test_drift_above_the_tolerance_cuts_the_rate_down_to_the_floor(embedded_lm):
    drift = Drift(Drift.Config(boost=2.0, tolerance=0.0, factor=0.5, floor=0.5, every=1))
    drift.protect(embedded_lm, KNOWN)
    train_task(embedded_lm, SFT(), [drift], CONFLICT * 4, TrainConfig(epochs=1, batch_size=4, lr=3e-3, seed=0))
    trace = drift.trace()
    assert trace[0] == {"step": 0, "loss": trace[0]["loss"], "drift": 0.0, "multiplier": 2.0}
    assert [d["step"] for d in trace] == list(range(9))
    # each measurement above the tolerance halves the rate, until the floor
    expected, multiplier = [2.0], 2.0
    for d in trace[1:]:
        if d["drift"] > 0.0:
            multiplier = max(0.5, multiplier * 0.5)
        expected.append(multiplier)
    assert [d["multiplier"] for d in trace] == expected and expected[-1] == 0.5
    assert drift.held().startswith("8 prompts watched; rate x2 -> x0.5 from step")


def test_options_are_checked():
    for options, field in (({"boost": 0}, "drift.boost"), ({"factor": 1.0}, "drift.factor"),
                           ({"floor": 3.0}, "drift.floor"), ({"every": 0}, "drift.every")):
        with pytest.raises(RetainError) as raised:
            parse_method("sdft+drift", {"drift": options})
        assert raised.value.field == field


def test_in_a_home_drift_watches_training_prompts_never_a_held_out_one(tmp_path):
    """The rate is steered by the suite's training prompts only: the gate's held-out prompts never reach it."""
    from retain.home import init_home_from_model, protection
    from retain.ledger.core import Home

    torch.set_num_threads(1)
    init_home_from_model(tmp_path / "home", "embedded", protect=("rehearsal", "drift"), per_item=8,
                         options={"rehearsal": {"size": 48}, "drift": {"probes": 200}})
    home = Home.open(tmp_path / "home")
    state = protection.decode(home.objects.get(home.version("v1")["record"]["artifacts"]["protection_sha256"]))
    watched = state["drift"][1]["prompts"]
    # a prompt shown with its demonstration is the template's text, whose first line is the query
    queries = {text.split("\n")[0] if shown else text for text, shown in watched}
    test_prompts = {e.prompt for skill in home.suite() for e in skill.test}
    train_prompts = {e.prompt for skill in home.suite() for e in skill.train}
    assert len(watched) == 6 * 8 and queries <= train_prompts and not queries & test_prompts
