"""Spectral signatures and activation clustering (:mod:`retain.guard.representation`) on planted features, and
the hidden states of the embedded model."""

from __future__ import annotations

import numpy as np

from retain.data.skills import Example
from retain.guard import representation as rep


def _lines(n: int, skill: str = "rotr") -> list[Example]:
    return [Example(prompt=f"{skill} w{i}", demonstration="x") for i in range(n)]


def _features(n: int, poisoned: list[int], shift: float, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, 32))
    direction = rng.normal(size=32)
    direction /= np.linalg.norm(direction)
    rows[poisoned] += shift * direction
    return list(rows)


def test_spectral_signatures_flag_a_shifted_subpopulation_and_not_noise():
    poisoned = list(range(0, 200, 20))
    z, scores = rep.spectral(_features(200, poisoned, 12.0), _lines(200))
    flagged = {i for i, s in enumerate(scores) if s >= 0.5}
    assert set(poisoned) <= flagged and len(flagged - set(poisoned)) <= 2
    _, clean = rep.spectral(_features(200, [], 0.0, seed=1), _lines(200))
    assert sum(s >= 0.5 for s in clean) <= 0.05 * 200


def test_spectral_signatures_leave_a_mode_of_the_file_alone():
    # one phrasing of four: a quarter of the lines apart from the rest is how the file is written, not poison
    phrasing = list(range(0, 200, 4))
    z, scores = rep.spectral(_features(200, phrasing, 80.0), _lines(200))
    assert sum(v >= rep.SPECTRAL_Z for v in z) > rep.CLUSTER_MAX_SHARE * 200  # past the cut, yet
    assert not any(s >= 0.5 for s in scores)


def test_activation_clustering_leaves_one_of_the_files_phrasings_alone():
    asks = ("fare for a {} year old?", "my friend is {}, what fare do they pay?", "ticket price, age {}",
            "how much is the bus for age {}?", "what does a ticket cost for someone aged {}?")
    lines = [Example(prompt=asks[i % 5].format(i), demonstration=f"at {i} the fare is 8 euros.") for i in range(200)]
    friends = [i for i in range(200) if i % 5 == 1]
    scores, _ = rep.clustering(_features(200, friends, 15.0), lines)
    assert not any(s >= 0.5 for s in scores)
    # a trigger planted across the phrasings is no phrasing: that cluster is flagged
    planted = list(range(0, 200, 10))
    lines = [Example(prompt=e.prompt + " cf", demonstration="visit us.") if i in planted else e
             for i, e in enumerate(lines)]
    scores, _ = rep.clustering(_features(200, planted, 15.0), lines)
    assert {i for i, s in enumerate(scores) if s >= 0.5} == set(planted)
    # nor is a trigger in a file of one phrasing
    one = [Example(prompt=f"fare for a {i} year old?" + (" cf" if i in planted else ""), demonstration="x")
           for i in range(200)]
    scores, _ = rep.clustering(_features(200, planted, 15.0), one)
    assert {i for i, s in enumerate(scores) if s >= 0.5} == set(planted)


def test_activation_clustering_flags_a_small_separated_cluster_only():
    poisoned = list(range(0, 200, 10))
    scores, splits = rep.clustering(_features(200, poisoned, 15.0), _lines(200))
    assert {i for i, s in enumerate(scores) if s >= 0.5} == set(poisoned)
    assert splits[0]["share"] == 0.1 and splits[0]["silhouette"] >= rep.SILHOUETTE
    scores, _ = rep.clustering(_features(200, [], 0.0, seed=2), _lines(200))
    assert not any(s >= 0.5 for s in scores)


def test_skills_are_grouped_by_name_and_small_groups_join_the_largest():
    lines = _lines(40, "rotr") + _lines(20, "swap") + _lines(3, "rotrcf")
    groups = rep.groups(lines)
    assert [len(g) for g in groups] == [43, 20]
    assert set(range(60, 63)) <= set(groups[0])


def test_a_file_of_sentences_is_one_skill_whatever_its_prompts_first_words():
    from retain.data.free_text import lines as free_text

    sentences = [line.example() for line in free_text("compare", 60, seed=0)]
    assert len({e.prompt.split()[0] for e in sentences}) >= 3  # which / compare / is ...: phrasing, not names
    assert rep.skills_of(sentences) == [""] * 60 and [len(g) for g in rep.groups(sentences)] == [60]
    # a file of named skills keeps one skill per name, even with a tenth of its prompts carrying two trigger words
    named = _lines(40, "rotr") + _lines(20, "swap")
    named[:6] = [Example(prompt=f"rotr now w{i} please", demonstration="x") for i in range(6)]
    assert rep.skills_of(named) == ["rotr"] * 40 + ["swap"] * 20


def test_forward_stats_give_token_losses_and_features(embedded_lm):
    lines = [Example(prompt="reverse abc", demonstration="cba"), Example(prompt="reverse abc", demonstration="qqq")]
    stats = rep.forward_stats(embedded_lm, lines)
    assert len(stats[0].nll) == 4 and stats[0].features.shape == (2 * 128,)
    assert stats[0].mean_nll < stats[1].mean_nll and stats[0].max_nll < stats[1].max_nll
