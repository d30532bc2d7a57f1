"""The stream metrics against a matrix worked out by hand (REFERENCE section 3)."""

from __future__ import annotations

import math

import pytest

from retain.errors import RetainError
from retain.evaluate import metrics

# Row 0 before training; row i after task i. Worked by hand below.
R = [[0.1, 0.2, 0.3],
     [0.9, 0.3, 0.4],
     [0.7, 0.8, 0.5],
     [0.6, 0.7, 0.9]]


def test_hand_worked_matrix() -> None:
    assert metrics.acc(R) == pytest.approx((0.6 + 0.7 + 0.9) / 3)
    assert metrics.bwt(R) == pytest.approx(((0.6 - 0.9) + (0.7 - 0.8)) / 2)
    assert metrics.fwt(R) == pytest.approx(((0.3 - 0.2) + (0.5 - 0.3)) / 2)
    assert metrics.forgetting_per_task(R) == pytest.approx([0.9 - 0.6, 0.8 - 0.7])
    assert metrics.forgetting(R) == pytest.approx(0.2)
    assert metrics.retention_per_task(R) == pytest.approx([0.6 / 0.9, 0.7 / 0.8])
    assert metrics.retention(R) == pytest.approx((0.6 / 0.9 + 0.7 / 0.8) / 2)


def test_summarize_has_every_metric() -> None:
    s = metrics.summarize(R)
    assert set(s) == {"acc", "bwt", "fwt", "forgetting", "retention"}
    assert s["bwt"] == pytest.approx(-0.2) and s["fwt"] == pytest.approx(0.15)


def test_forgetting_ignores_the_score_before_training() -> None:
    # Task 2 scored 0.95 before any training but only 0.5 at best while the stream ran: it forgot 0.5 - 0.4.
    high_prior = [[0.0, 0.95, 0.0], [0.8, 0.3, 0.1], [0.7, 0.5, 0.2], [0.6, 0.4, 0.9]]
    assert metrics.forgetting_per_task(high_prior) == pytest.approx([0.8 - 0.6, 0.5 - 0.4])


def test_no_forgetting_gives_zero_and_full_retention() -> None:
    perfect = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
    assert metrics.bwt(perfect) == 0.0
    assert metrics.forgetting(perfect) == 0.0
    assert metrics.retention(perfect) == 1.0


def test_one_task_has_no_backward_metrics() -> None:
    s = metrics.summarize([[0.2], [0.9]])
    assert s["acc"] == pytest.approx(0.9)
    assert all(math.isnan(s[k]) for k in ("bwt", "fwt", "forgetting", "retention"))


def test_unlearned_task_has_undefined_retention() -> None:
    never = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.4, 1.0]]
    assert math.isnan(metrics.retention_per_task(never)[0])
    assert metrics.retention(never) == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [[[0.1, 0.2], [0.3, 0.4]], [[0.1]], [[0.0], [float("nan")]], [1.0, 2.0]])
def test_bad_matrix_is_a_user_error(bad: list) -> None:
    with pytest.raises(RetainError) as err:
        metrics.summarize(bad)
    assert err.value.field == "R"
