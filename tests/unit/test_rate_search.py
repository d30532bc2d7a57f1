"""A home searching its own rate (retain.home.rate): what the pilots train and are scored on (never a test split),
the rule that picks one, and the home's record of the choice, which `retain reproduce` repeats."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from retain.data.jsonl import write_examples
from retain.data.skills import Example, Skill
from retain.data.synthetic import new_skills, probe_skills
from retain.home import init_home_from_model, learn_in_home
from retain.home.rate import RateSearch, choose, pilot_skill, prior_validation, search, split_validation
from retain.home.workflows import reproduce
from retain.ledger.core import Home


class Untouchable(list):
    """A test split nothing may read: any access fails the test."""

    def _leak(self, *args, **kwargs):
        raise AssertionError("the rate search read a test split")

    __iter__ = __len__ = __getitem__ = __contains__ = __bool__ = _leak


def _skill(name: str, n: int, offset: int = 0) -> Skill:
    return Skill(name=name, train=[Example(f"{name} q{i + offset}", f"a{i}", answer=f"a{i}") for i in range(n)],
                 test=Untouchable([Example(f"{name} TEST{i}", "t") for i in range(5)]), scorer="alnum")


def test_validation_is_held_out_of_the_training_split_by_prompt():
    skill = Skill("s", train=[Example(f"p{i % 40}", f"d{i}") for i in range(80)], test=[Example("held", "x")])
    fit, val = split_validation(skill, 8, seed=3)
    assert len({e.prompt for e in val}) == 8 and len(fit) + len(val) == 80
    assert not {e.prompt for e in fit} & {e.prompt for e in val}  # every example of a held prompt goes with it
    assert "held" not in {e.prompt for e in fit + val}
    assert split_validation(skill, 8, seed=3) == (fit, val)  # seeded


def test_prior_validation_reads_only_training_splits():
    suite = [_skill("double", 30), _skill("upper", 4)]
    priors = prior_validation(suite, per_item=10, seed=0)
    assert [p.name for p in priors] == ["double", "upper"]
    assert [len(p.test) for p in priors] == [10, 4]
    for p, s in zip(priors, suite):
        assert set(p.test) <= set(s.train) and p.scorer == s.scorer


def test_the_search_never_reads_a_test_split_and_the_winner_goes_on():
    """The planted leak: every test split (the suite's and the new skill's held-out one) raises when read; the
    pilots' data and validation come from the new skill's training split only."""
    skill = _skill("new", 200)
    suite = [_skill("double", 40, 1000), _skill("upper", 40, 2000)]
    config = RateSearch(factors=(1.0, 2.0, 0.5), fraction=0.25, validation=20, prior_per_item=8, tolerance=0.03)
    trained = {}

    class Model(dict):
        """A stand-in model that a weak reference can watch."""

    alive = []

    def pilot(lr, trial):
        assert not trial.test  # a pilot scores no split; its validation is scored by the search's loss
        gc.collect()
        # a pilot that lost is dropped: only the choice so far is held while the next one trains
        assert sum(ref() is not None for ref in alive) <= 1
        trained[lr] = trial
        model = Model(lr=lr)
        alive.append(weakref.ref(model))
        return model

    validation = {}

    new_loss = {1e-4: 2.0, 2e-4: 1.5, 0.5e-4: 2.5}
    # 2e-4 learns most but lifts one entry's loss by 0.04 (0.02 as a mean over the two entries would pass)
    prior_rise = {1e-4: 0.01, 2e-4: 0.04, 0.5e-4: 0.0}

    def loss(model, examples):
        validation[model["lr"]] = examples
        return new_loss[model["lr"]]

    def priors_loss(model, priors):
        assert all(set(p.test) <= set(s.train) for p, s in zip(priors, suite))
        # the rise is on one entry: the worst entry decides, not the mean
        return {"double": 1.0, "upper": 1.0 if model == "champion" else 1.0 + prior_rise[model["lr"]]}

    found = search(config, 1e-4, skill, suite, pilot, "champion", loss=loss, priors_loss=priors_loss)
    assert sorted(trained) == [0.5e-4, 1e-4, 2e-4]
    assert sorted(validation) == sorted(trained)
    for lr, trial in trained.items():
        val = {e.prompt for e in validation[lr]}
        assert val == {e.prompt for e in validation[1e-4]}  # every pilot on the same validation
        assert len(val) == 20 and not val & {e.prompt for e in trial.train}
        assert set(trial.train) | set(validation[lr]) <= set(skill.train)
        assert len(trial.train) == 50  # a quarter of the learn's examples
    assert found.lr == pytest.approx(1e-4) and found.model == {"lr": 1e-4}
    assert found.evidence["chosen"] == 1.0 and len(found.evidence["pilots"]) == 3
    # the candidate continues on what the winning pilot did not train on, the validation prompts included
    rest = found.remainder(Skill("new", train=skill.train, test=[]))
    assert len(rest.train) == 150 and not set(rest.train) & set(found.trained)
    assert {e.prompt for e in validation[1e-4]} <= {e.prompt for e in rest.train}


def test_the_rule_learns_most_among_the_pilots_that_keep_the_priors():
    # "prior": the worst rise of a prior entry's loss over the champion's
    pilots = [{"lr": 1.0, "new": 2.0, "prior": 0.01}, {"lr": 2.0, "new": 1.5, "prior": 0.03},
              {"lr": 3.0, "new": 1.2, "prior": 0.08}]
    assert choose(pilots, tolerance=0.05)["lr"] == 2.0
    assert choose(pilots, tolerance=0.1)["lr"] == 3.0
    assert choose(pilots, tolerance=0.0)["lr"] == 1.0  # none kept: the least drift
    tie = [{"lr": 2.0, "new": 1.5, "prior": 0.0}, {"lr": 1.0, "new": 1.5, "prior": 0.0}]
    assert choose(tie, 0.05)["lr"] == 1.0


def test_too_little_data_is_not_searched():
    config = RateSearch(min_examples=64, validation=8)
    assert pilot_skill(config, _skill("small", 40)) is None
    found = search(config, 1e-4, _skill("small", 40), [], lambda lr, s: pytest.fail("no pilot"), None)
    assert found.skipped and found.lr == 1e-4 and "a search needs 64" in found.line()


def test_bad_search_settings_name_the_field():
    from retain.errors import RetainError

    with pytest.raises(RetainError) as err:
        RateSearch.from_dict({"factors": [1.0, -2.0]}, "home.json")
    assert err.value.field == "rate_search.factors"
    with pytest.raises(RetainError):
        RateSearch.from_dict({"rate": 1}, "home.json")


@pytest.fixture(scope="module")
def searched_home(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("rate")
    init_home_from_model(tmp / "home", "embedded", options={"rehearsal": {"size": 48}}, per_item=8)
    skill = new_skills(n_train=120, n_test=10, seed=0)[0]
    path = tmp / f"{skill.name}.jsonl"
    write_examples(path, skill.train + skill.test)
    return tmp / "home", path


def test_a_plain_learn_searches_records_and_reproduces_its_rate(searched_home, capsys):
    root, path = searched_home
    outcome = learn_in_home(root, path, epochs=1, force="test")
    record = Home.open(root).version(outcome.version)["record"]
    rate = record["config"]["rate"]
    base = Home.open(root).version("v1")["record"]["config"]["learn"]["lr"]
    assert rate["source"] == "searched"
    evidence = rate["search"]
    assert [p["lr"] for p in evidence["pilots"]] == pytest.approx([base * f for f in sorted(RateSearch().factors)])
    assert rate["lr"] == pytest.approx(base * evidence["chosen"]) == record["options"]["recipe"]["train"]["lr"]
    chosen = next(p for p in evidence["pilots"] if p["factor"] == evidence["chosen"])
    assert chosen == choose(evidence["pilots"], RateSearch().tolerance)
    # the candidate trained on the rest of the training split after the winning pilot
    assert record["config"]["held_out"]["examples"] == 26
    said = capsys.readouterr().err
    assert "searching the rate: 2 pilots" in said and "searched on pilots" in said
    from typer.testing import CliRunner

    from retain.cli.home import app
    shown = CliRunner().invoke(app, ["show", str(root), outcome.version], terminal_width=400).output
    assert f"rate {rate['lr']:g} (searched; pilots x1 = {base:g}: new-skill loss" in shown, shown
    assert reproduce(root, outcome.version)["match"]


def test_a_given_rate_or_no_rate_search_trains_at_the_homes_rate(searched_home):
    root, path = searched_home
    fixed = learn_in_home(root, path, epochs=1, force="test", name="fixed", rate_search=False)
    given = learn_in_home(root, path, epochs=1, force="test", name="given", lr=2e-4)
    home = Home.open(root)
    assert home.version(fixed.version)["record"]["config"]["rate"]["source"] == "the home's rate"
    assert home.version(given.version)["record"]["config"]["rate"] == {"lr": 2e-4, "source": "--lr"}
