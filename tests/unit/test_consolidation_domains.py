"""The vision and control streams are what their docstrings say: fixed splits, fixed permutations,
task masks, conflicting views, a perfect expert and seeded, repeatable runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from retain.bench.consolidation import run_stream
from retain.domains import control_cartpole as control
from retain.domains import vision_digits as vision
from retain.models.classifier import ClassifierAdapter, Labeled
from retain.train.loop import TrainConfig

TINY = TrainConfig(epochs=1, batch_size=32)


def test_split_digits_has_five_two_class_tasks() -> None:
    task_il = vision.split_digits("val", TINY, task_incremental=True)
    class_il = vision.split_digits("val", TINY, task_incremental=False)
    assert len(task_il.tasks) == 5 and task_il.kind == "task-incremental"
    for pair, task, plain in zip(vision.PAIRS, task_il.tasks, class_il.tasks):
        assert {e.y for e in task.train} == set(pair)
        assert all(e.classes == pair for e in task.train)
        assert all(e.classes is None for e in plain.train)
    total = sum(len(t.train) for t in task_il.tasks)
    assert total == 1078  # 60% of 1,797, the same split on every call


def test_permuted_digits_are_fixed_distinct_permutations() -> None:
    a, b = vision.permuted_digits("test", TINY), vision.permuted_digits("test", TINY)
    first = [t.train[0].x for t in a.tasks]
    assert all(torch.equal(x, y.train[0].x) for x, y in zip(first, b.tasks))
    assert len({tuple(x.tolist()) for x in first}) == len(first) == 5
    assert sorted(first[1].tolist()) == sorted(first[0].tolist())  # same pixels, other places


def test_masked_classifier_only_chooses_among_allowed_classes() -> None:
    model = torch.nn.Linear(2, 4)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([5.0, 0.0, 1.0, 0.0]))
    adapter = ClassifierAdapter(model)
    assert adapter.accuracy([Labeled(torch.zeros(2), 2, (2, 3))]) == 1.0
    assert adapter.accuracy([Labeled(torch.zeros(2), 2)]) == 0.0


class Expert:
    """Acts with the LQR expert on the plain view's observation (its first four entries are the state)."""

    def act(self, observations: np.ndarray) -> np.ndarray:
        return np.array([control.expert_action(o[:4].astype(np.float64)) for o in observations])


def test_the_expert_balances_for_the_full_episode() -> None:
    view = control.View(0, 4)
    assert control.mean_return(Expert(), view, episodes=2, first_seed=0) == control.MAX_RETURN


def test_views_conflict_and_carry_the_task_identity() -> None:
    plain, mirrored = control.View(0, 4), control.View(1, 4)
    demos = control.demonstrations(plain, states=200, seed=0)
    state = np.array([0.1, -0.2, 0.03, 0.1])
    assert np.allclose(mirrored(state)[:4], -plain(state)[:4])
    assert mirrored(state)[5] == 1.0 and plain(state)[4] == 1.0
    # the mirrored task shows -s, so the observation a plain demonstration shows asks for the opposite push
    flipped = [control.expert_action(-e.x[:4].numpy().astype(np.float64)) for e in demos]
    agree = np.mean([f == e.y for f, e in zip(flipped, demos)])
    assert agree < 0.05
    assert {e.y for e in demos} == {0, 1}


@pytest.fixture
def one_thread():
    # as the benchmark runs: tiny models are faster without intra-op threads
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_run_repeats_bit_for_bit(one_thread: None) -> None:
    scenario = vision.split_digits("val", TrainConfig(epochs=3, batch_size=32), task_incremental=False)
    scenario.tasks = scenario.tasks[:2]
    options = {"ewc": {"fisher_samples": 50}, "replay": {"size": 20}}
    first = run_stream(scenario, "sft+ewc+replay", options, seed=3)
    second = run_stream(scenario, "sft+ewc+replay", options, seed=3)
    assert first["R"] == second["R"] and first["memory_bytes"] == second["memory_bytes"] > 0
    assert len(first["R"]) == 3 and first["R"][1][0] > 0.9  # row 1: right after learning the first task
