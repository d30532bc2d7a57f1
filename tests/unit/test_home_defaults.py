"""A home made and learned into with no options: what `retain init HOME` then `retain learn HOME skill.jsonl`
train. The defaults are the protected recipe (SDFT + rehearsal as cross-entropy on stored answers), the model's
SDFT settings and scorer, and the home's rate; a learn can still override each."""

from __future__ import annotations

import pytest
import torch

from retain.data.jsonl import write_examples
from retain.data.synthetic import new_skills
from retain.home import defaults, init_home_from_model, learn_in_home
from retain.ledger.core import Home
from retain.models.tiny.build import EMBEDDED_FINETUNE_LR


@pytest.fixture(scope="module")
def plain_home(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("defaults")
    # a small buffer keeps the test quick; every other setting is the home's default
    init_home_from_model(tmp / "home", "embedded", options={"rehearsal": {"size": 48}}, per_item=8)
    skill = new_skills(n_train=16, n_test=4, seed=0)[0]
    path = tmp / f"{skill.name}.jsonl"
    write_examples(path, skill.train + skill.test)
    return tmp / "home", path


def test_init_records_the_protected_recipe_and_the_models_settings(plain_home):
    v1 = Home.open(plain_home[0]).version("v1")["record"]["config"]
    assert v1["protection"]["methods"] == ["rehearsal"]
    assert v1["protection"]["settings"]["rehearsal"] == {**defaults.PROTECTION_SETTINGS["rehearsal"], "size": 48}
    assert v1["learn"]["method"] == "sdft+rehearsal" and v1["learn"]["scorer"] == "alnum"
    assert v1["learn"]["options"]["sdft"]["skip_tokens"] == 0 and v1["learn"]["options"]["sdft"]["max_new_tokens"] == 24
    assert v1["learn"]["lr"] == pytest.approx(EMBEDDED_FINETUNE_LR * defaults.EMBEDDED_LR_SCALE)


def test_a_learn_with_no_options_trains_the_homes_recipe(plain_home, capsys):
    root, path = plain_home
    outcome = learn_in_home(root, path, epochs=1, force="test")
    record = Home.open(root).version(outcome.version)["record"]
    recipe = record["options"]["recipe"]
    assert record["method"] == "sdft+rehearsal" and record["options"]["scorer"] == "alnum"
    assert recipe["options"]["sdft"]["skip_tokens"] == 0 and recipe["options"]["sdft"]["max_new_tokens"] == 24
    rehearsal = recipe["options"]["rehearsal"]
    assert {k: rehearsal[k] for k in ("target", "refresh", "ratio", "draw", "size")} == {
        **defaults.PROTECTION_SETTINGS["rehearsal"], "size": 48}
    assert recipe["train"]["lr"] == pytest.approx(EMBEDDED_FINETUNE_LR * defaults.EMBEDDED_LR_SCALE)
    assert record["config"]["rate"]["lr"] == recipe["train"]["lr"] and record["config"]["rate"]["source"] == "the home's rate"
    said = capsys.readouterr().err
    line = next(line for line in said.splitlines() if line.startswith("learning with"))
    assert "sdft+rehearsal" in line and "rehearsal: continues the champion's state (48 prompts held" in line


def test_a_learn_can_still_name_its_own_method_scorer_and_rate(plain_home, capsys):
    root, path = plain_home
    outcome = learn_in_home(root, path, "sdft", options={"sdft": {"max_new_tokens": 8}}, scorer="exact", lr=2e-4,
                            epochs=1, force="test", name="own")
    record = Home.open(root).version(outcome.version)["record"]
    recipe = record["options"]["recipe"]
    assert record["method"] == "sdft" and record["options"]["scorer"] == "exact"
    # the home's SDFT settings stay under what the learn gives
    assert recipe["options"]["sdft"]["max_new_tokens"] == 8 and recipe["options"]["sdft"]["skip_tokens"] == 0
    assert recipe["train"]["lr"] == 2e-4 and "rehearsal" not in recipe["options"]
    assert "learning with sdft (no protection), lr 0.0002 (--lr)" in capsys.readouterr().err
