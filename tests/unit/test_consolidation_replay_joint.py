"""Replay's reservoir (Vitter's Algorithm R) keeps a uniform bounded sample; joint trains on everything seen."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from retain.methods.joint import Joint
from retain.methods.replay import Replay, Reservoir
from retain.methods.sft import SFT
from retain.models.classifier import ClassifierAdapter, Labeled
from retain.train.loop import TrainConfig, train_task


def test_reservoir_never_exceeds_its_size() -> None:
    buffer = Reservoir(size=7, seed=0)
    for i in range(100):
        buffer.add(i)
        assert len(buffer.items) == min(i + 1, 7)
    assert len(set(buffer.items)) == 7 and buffer.offered == 100


def test_reservoir_keeps_a_uniform_sample() -> None:
    # 200 items into 20 slots, 2,000 times: every item should be kept with probability 1/10. Chi-square over
    # ten groups of twenty consecutive items (early vs late arrivals); 27.88 is the 0.999 quantile at 9 dof.
    items, size, trials, groups = 200, 20, 2000, 10
    counts = [0] * groups
    for trial in range(trials):
        buffer = Reservoir(size, seed=trial)
        for i in range(items):
            buffer.add(i)
        for kept in buffer.items:
            counts[kept * groups // items] += 1
    expected = trials * size / groups
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 27.88, counts


def test_a_biased_buffer_fails_the_uniformity_statistic() -> None:
    # the statistic above must be able to fail: keeping the first 20 items is maximally non-uniform
    counts = [2000 * 20 if g == 0 else 0 for g in range(10)]
    expected = 2000 * 20 / 10
    assert sum((c - expected) ** 2 / expected for c in counts) > 27.88


def test_replay_mixes_stored_examples_after_the_first_task() -> None:
    replay = Replay(Replay.Config(size=5, ratio=0.5, seed=0))
    rng = random.Random(0)
    assert replay.mix(list(range(8)), rng) == list(range(8))
    assert replay.memory_bytes() == 0
    replay.after_task(None, [("old", i) for i in range(20)])
    mixed = replay.mix(list(range(8)), rng)
    assert mixed[:8] == list(range(8))
    assert len(mixed) == 12 and all(item in replay.buffer.items for item in mixed[8:])
    assert len(set(mixed[8:])) == 4
    assert replay.memory_bytes() == 5 * (3 + 8)


class Recorder(SFT):
    """SFT that remembers every label it trained on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def loss(self, adapter: Any, batch: list[Any]) -> torch.Tensor:
        self.seen.update(e.y for e in batch)
        return super().loss(adapter, batch)


def _task(label: int, n: int = 6) -> list[Labeled]:
    return [Labeled(torch.full((2,), float(label)), label) for _ in range(n)]


def test_joint_trains_on_every_task_seen_so_far() -> None:
    torch.manual_seed(0)
    adapter = ClassifierAdapter(nn.Linear(2, 3))
    joint = Joint()
    cfg = TrainConfig(epochs=1, batch_size=4)
    for label in range(3):
        recorder = Recorder()
        train_task(adapter, recorder, [joint], _task(label), cfg)
        assert recorder.seen == set(range(label + 1))
    assert len(joint.seen) == 18
    assert joint.memory_bytes() == 18 * (2 * 4 + 8 + 8)


def test_replay_trains_on_earlier_tasks_through_the_loop() -> None:
    torch.manual_seed(0)
    adapter = ClassifierAdapter(nn.Linear(2, 3))
    replay = Replay(Replay.Config(size=4))
    first, second = Recorder(), Recorder()
    train_task(adapter, first, [replay], _task(0), TrainConfig(epochs=1, batch_size=4))
    train_task(adapter, second, [replay], _task(1), TrainConfig(epochs=1, batch_size=4))
    assert first.seen == {0} and second.seen == {0, 1}
    assert len(replay.buffer.items) == 4
