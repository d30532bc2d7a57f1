"""Consistency (:mod:`retain.guard.consistency`): each line against a copy of the embedded model fine-tuned on
the other lines of its skill; flips and near misses inside the new skill stand out, clean lines do not."""

from __future__ import annotations

import pytest

from retain.data.synthetic import new_skills
from retain.guard import consistency as cons
from retain.guard.attacks import near_miss, plant


def test_excess_is_measured_in_spreads_of_the_lower_lines():
    values = [0.0] * 60 + [1.0] * 30 + [2.0] * 9 + [50.0]
    out = cons.excess(values)
    # P50 = 0, P80 = 1: the spread is 1
    assert out[0] == 0.0 and out[70] == 1.0 and out[-1] == 50.0
    assert cons.excess([0.0] * 10 + [0.3])[-1] == pytest.approx(0.3 / cons.SCALE_FLOOR)


def test_near_miss_changes_exactly_one_letter():
    import random

    rng = random.Random(0)
    for word in ("abc", "zz", "hello"):
        changed = near_miss(word, rng)
        assert len(changed) == len(word) and sum(a != b for a, b in zip(word, changed)) == 1


@pytest.mark.parametrize("attack", ["flip", "near miss"])
def test_wrong_answers_inside_the_new_skill_are_inconsistent(embedded_lm, attack):
    skill = new_skills(n_train=80, n_test=5, seed=2, names=["ends"])[0]
    planted = plant(attack, "ends", skill.train, 0.05, 2)
    result = cons.consistency(embedded_lm, planted.examples, mode="fit", seed=0)
    flagged = {i for i, s in enumerate(result.scores) if s >= 0.5}
    assert result.mode == "fit" and len(result.stats) == len(result.trained) == 80
    assert planted.poisoned <= flagged, (sorted(planted.poisoned), sorted(flagged))
    assert len(flagged - planted.poisoned) <= 4


def test_one_very_surprising_token_is_enough():
    import numpy as np

    from retain.data.skills import Example
    from retain.guard.representation import LineStats

    lines = [Example(prompt=f"rotr w{i}", demonstration="x") for i in range(40)]
    stats = [LineStats([0.1 + 0.1 * (i % 10)] * 6, np.zeros(2)) for i in range(40)]
    stats[5] = LineStats([0.1] * 5 + [6.0], np.zeros(2))   # a near miss: one token, mean barely moved
    stats[9] = LineStats([4.0] * 6, np.zeros(2))           # a flip: every token
    z_mean, z_max, scores = cons.score_lines(stats, lines)
    assert {i for i, s in enumerate(scores) if s >= 0.5} == {5, 9}
    assert z_mean[5] < cons.CONSISTENCY_CUT <= z_max[5] and z_mean[9] >= cons.CONSISTENCY_CUT
