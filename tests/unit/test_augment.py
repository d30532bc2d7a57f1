"""Surface variants of training prompts (:mod:`retain.data.augment`): they ask the same thing, they stay out of
the held-out split, and a learn into a home trains on them, records them and reproduces with them."""

from __future__ import annotations

import random
import re

import pytest

from retain.data.augment import augmented, surface_variant
from retain.data.skills import Example, Skill
from retain.errors import RetainError


def _words(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _skill() -> Skill:
    train = [Example(f"capital of {name}?", f"c-{name[:3]}", name[:3]) for name in ("zorbia", "quellin", "aptera")]
    train += [Example("river zorbia", "r-k-q", "kqm")]
    return Skill("facts", train=train, test=[Example("capital: zorbia", "c-zor", "zor")], scorer="alnum")


def test_a_variant_keeps_every_word_in_order_and_changes_the_rest():
    rng = random.Random(0)
    for prompt in ("capital of zorbia?", "river: kqmx", "x", "two words, then more."):
        variants = {surface_variant(prompt, rng) for _ in range(40)}
        assert all(_words(v) == _words(prompt) for v in variants)
        assert len(variants - {prompt}) >= 3  # not the prompt again and again
        assert all(v == v.strip() and "  " not in v for v in variants)


def test_only_the_training_split_grows_and_no_variant_is_held_out_or_avoided():
    skill = _skill()
    avoid = {"capital of zorbia", "capital zorbia?", "capital of zorbia.", "capital, of zorbia?"}
    out = augmented(skill, 4, seed=0, avoid=avoid)
    assert out.test == skill.test and out.train[:len(skill.train)] == skill.train
    extra = out.train[len(skill.train):]
    assert 3 * 4 <= len(extra) <= 4 * len(skill.train)
    prompts = [e.prompt for e in out.train]
    assert len(prompts) == len(set(prompts))  # distinct
    assert not set(prompts[len(skill.train):]) & (avoid | {e.prompt for e in skill.test})
    by_answer = {e.answer: e for e in skill.train}
    for e in extra:  # each variant keeps its source's demonstration and answer
        source = by_answer[e.answer]
        assert (e.demonstration, _words(e.prompt)) == (source.demonstration, _words(source.prompt))
    assert augmented(skill, 0, seed=0) is skill


def test_held_out_and_avoided_prompts_are_never_made_though_the_edits_reach_them():
    held, avoid = "x, y", {"x y?", "x:y"}
    rng = random.Random(0)
    assert {held} | avoid <= {surface_variant("x y", rng) for _ in range(3000)}  # reachable, so this can fail
    skill = Skill("s", train=[Example("x y", "d")], test=[Example(held, "d")])
    for seed in range(25):
        made = {e.prompt for e in augmented(skill, 16, seed, avoid).train}
        assert not made & ({held} | avoid) and len(made) > 5


def test_variants_are_seeded():
    skill = _skill()
    assert augmented(skill, 3, seed=1) == augmented(skill, 3, seed=1)
    assert augmented(skill, 3, seed=1).train != augmented(skill, 3, seed=2).train


def test_a_learn_trains_on_variants_records_them_and_reproduces(tmp_path, echo_data, new_home):
    """The learn with variants trains other weights than the same learn without (the variants are trained on);
    its version records the copies and what they avoid, and ``reproduce`` (which reads them back) matches."""
    from retain.home import learn_in_home, reproduce
    from retain.ledger.gate import GatePolicy

    fast = {"method": "sft", "epochs": 1, "lr": 1e-2, "batch_size": 8, "quiet": True, "force": "test"}
    other, _ = new_home(tmp_path / "plain", GatePolicy(floor=0.0), measured=True)
    home, _ = new_home(tmp_path / "varied", GatePolicy(floor=0.0), measured=True)
    assert other.version("v1")["record"]["artifacts"] == home.version("v1")["record"]["artifacts"]
    plain = learn_in_home(other.root, echo_data, **fast)
    varied = learn_in_home(home.root, echo_data, augment=2, augment_avoid=["echo 1!"], **fast)
    assert "augment" not in plain.record["options"]
    assert varied.record["options"]["augment"] == {"copies": 2, "avoid": ["echo 1!"]}
    assert varied.record["artifacts"]["weights_sha256"] != plain.record["artifacts"]["weights_sha256"]
    assert reproduce(home.root, varied.version)["match"]
    with pytest.raises(RetainError, match="from 0 to 16"):
        learn_in_home(home.root, echo_data, name="echo2", augment=17, **fast)
