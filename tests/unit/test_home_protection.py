"""Protection that persists in a home: the state each version keeps, what a learn continues, what rollback
brings back, and that rehearsal never sees a held-out test prompt of the suite."""

from __future__ import annotations

import pytest
import torch

from retain.data.jsonl import write_examples
from retain.data.synthetic import new_skills
from retain.errors import RetainError
from retain.home import init_home_from_model, learn_in_home
from retain.home import defaults, protection
from retain.ledger.core import Home
from retain.ledger.operations import rollback

# small budgets: sampled Fisher on a few examples, short rollouts, a small rehearsal buffer
OPTIONS = {"ewc": {"fisher_samples": 4}, "sdft": {"skip_tokens": 0, "max_new_tokens": 8},
           "rehearsal": {"size": 24, "max_new_tokens": 8}}


def _state(home: Home, version: str) -> dict:
    sha = home.version(version)["record"]["artifacts"]["protection_sha256"]
    return protection.decode(home.objects.get(sha))


def _skill_files(tmp_path, count=3):
    files = []
    for skill in new_skills(n_train=8, n_test=4, seed=0)[:count]:
        path = tmp_path / f"{skill.name}.jsonl"
        write_examples(path, skill.train + skill.test)
        files.append(path)
    return files


@pytest.fixture(scope="module")
def protected_home(tmp_path_factory):
    """A home over the embedded model with EWC and rehearsal state estimated at init, then two learns."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("protected")
    init_home_from_model(tmp / "home", "embedded", protect=("ewc", "rehearsal"),
                         options={"ewc": {"fisher_samples": 4}, "rehearsal": {"size": 24, "max_new_tokens": 8}})
    files = _skill_files(tmp)
    for path in files[:2]:
        learn_in_home(tmp / "home", path, "sdft+ewc+rehearsal", options=OPTIONS, epochs=1, force="test", quiet=True)
    return tmp / "home", files


def test_init_estimates_state_on_the_suite_and_rehearsal_never_sees_a_test_prompt(protected_home):
    home = Home.open(protected_home[0])
    v1 = _state(home, "v1")
    assert set(v1) == {"ewc", "rehearsal"}
    tensors, extra = v1["ewc"]
    assert extra["learned"] == 1 and any(float(t.abs().sum()) > 0 for k, t in tensors.items() if ".importance." in k)
    test_prompts = {e.prompt for skill in home.suite() for e in skill.test}
    for version in ("v1", "v2", "v3"):
        rehearsed = [item for group in _state(home, version)["rehearsal"][1]["groups"] for item in group]
        # a prompt shown with its demonstration is the template's text, whose first line is the query
        queries = {text.split("\n")[0] if shown else text for text, shown in rehearsed}
        assert rehearsed and not queries & test_prompts
    shown = [text for group in _state(home, "v1")["rehearsal"][1]["groups"] for text, flag in group if flag]
    assert shown and all("This is an example for a response" in text for text in shown)


def test_each_learn_continues_the_champions_state_and_it_survives_reopening(protected_home):
    home = Home.open(protected_home[0])
    learned = [_state(home, v)["ewc"][1]["learned"] for v in ("v1", "v2", "v3")]
    assert learned == [1, 2, 3]
    f2, f3 = _state(home, "v2")["ewc"][0], _state(home, "v3")["ewc"][0]
    importances = [k for k in f3 if ".importance." in k]
    # online EWC with gamma 1: v3's importance is v2's plus the second skill's, never less
    assert all(torch.all(f3[k] >= f2[k] - 1e-12) for k in importances)
    assert any(torch.any(f3[k] > f2[k]) for k in importances)
    notes = home.version("v3")["record"]["config"]["protection"]["notes"]
    assert notes == ["ewc: continues the champion's state",
                     "rehearsal: continues the champion's state (24 prompts held, size 24)"]
    # each skill's training prompts joined the rehearsal buffer as a group of their own, next to the suite's
    groups = [len(_state(home, v)["rehearsal"][1]["groups"]) for v in ("v1", "v2", "v3")]
    assert groups == [1, 2, 3]


def test_rollback_brings_back_the_matching_state(protected_home, tmp_path):
    import shutil

    root = tmp_path / "home"
    shutil.copytree(protected_home[0], root)
    home = Home.open(root)
    rollback(home, "v2")
    outcome = learn_in_home(root, protected_home[1][2], "sdft+ewc+rehearsal", options=OPTIONS, epochs=1,
                            force="test", quiet=True)
    home = Home.open(root)
    assert outcome.parent == "v2"
    # continued from v2 (learned 2), not from v3 (learned 3)
    assert _state(home, outcome.version)["ewc"][1]["learned"] == 3


def test_a_method_the_champion_has_no_state_for_protects_the_suite(protected_home, tmp_path):
    import shutil

    root = tmp_path / "home"
    shutil.copytree(protected_home[0], root)
    outcome = learn_in_home(root, protected_home[1][2], "sft+mas", options={"mas": {"lam": 1.0}}, epochs=1,
                            force="test", quiet=True)
    record = Home.open(root).version(outcome.version)["record"]
    assert record["config"]["protection"]["notes"][0].startswith("mas: protects the suite's training prompts")
    assert {s["name"] for s in record["config"]["protection"]["specs"]} >= {"reverse", "in-context", "rotr", "swap"}


def test_protect_changes_the_weights_and_nothing_to_protect_is_an_error(tmp_path):
    from retain import api

    torch.set_num_threads(1)
    data = _skill_files(tmp_path, 1)[0]
    prior = tmp_path / "prior.jsonl"
    prior.write_text("".join(f'{{"prompt": "reverse {w}"}}\n' for w in ("abc", "hello", "world", "retain")))
    with pytest.raises(RetainError, match="nothing to protect"):
        api.learn("embedded", data, "sdft+ewc", epochs=1, quiet=True)
    with pytest.raises(RetainError, match="no such file"):
        api.learn("embedded", data, "sdft+ewc", epochs=1, quiet=True, protect=[tmp_path / "missing.jsonl"])
    options = {"sdft": {"skip_tokens": 0, "max_new_tokens": 8}, "ewc": {"lam": 1e6, "fisher_samples": 4}}
    # several steps: at the first one the parameters sit on the anchor, where the penalty has no gradient
    plain = api.learn("embedded", data, "sdft", epochs=1, batch_size=2, quiet=True, options={"sdft": options["sdft"]})
    protected = api.learn("embedded", data, "sdft+ewc", epochs=1, batch_size=2, quiet=True, options=options,
                          protect=[prior])
    differs = [not torch.equal(a, b) for a, b in zip(plain.adapter.model.parameters(),
                                                      protected.adapter.model.parameters())]
    assert any(differs)
    assert protected.config["protect"] == [str(prior)]


def test_si_cannot_protect_named_data():
    from retain.methods.registry import parse_method

    _, (si,) = parse_method("sft+si")
    with pytest.raises(RetainError, match="training path"):
        si.protect(None, [])


def test_a_home_protects_the_number_of_prompts_per_item_it_was_created_with(tmp_path):
    """``retain init --protection-prompts N``: N training prompts of each suite item at init, and N of each item
    (the learned skill's too) when a later learn starts a method the champion has no state for."""
    torch.set_num_threads(1)
    root = tmp_path / "home"
    init_home_from_model(root, "embedded", protect=("rehearsal",), per_item=3)
    home = Home.open(root)
    assert [len(skill.train) for skill in home.suite()] == [3] * 6  # the embedded probes are drawn that many
    assert home.version("v1")["record"]["config"]["protection"]["notes"] == [
        "rehearsal: protects the suite's training prompts (18; 18 prompts held, size 1024)"]
    files = _skill_files(tmp_path, 2)
    learn_in_home(root, files[0], "sft", epochs=1, force="test", quiet=True)
    outcome = learn_in_home(root, files[1], "sft+mas", options={"mas": {"lam": 1.0}}, epochs=1, force="test",
                            quiet=True)
    notes = Home.open(root).version(outcome.version)["record"]["config"]["protection"]["notes"]
    assert notes == ["mas: protects the suite's training prompts (21)"]  # 6 probes and the first skill, 3 each
    with pytest.raises(RetainError) as raised:
        init_home_from_model(tmp_path / "other", "embedded", per_item=0)
    assert raised.value.field == "--protection-prompts" and not (tmp_path / "other").exists()


def test_the_cli_default_of_protected_prompts_is_the_homes():
    """``retain init``'s --protection-prompts default is written out (its --help imports no torch): it must be
    the library's."""
    import inspect

    from retain.cli.home import init

    assert inspect.signature(init).parameters["protection_prompts"].default == protection.PER_ENTRY


def test_init_sizes_the_buffer_the_suites_prompts_are_kept_in(tmp_path):
    """``retain init --set rehearsal.size=N``: the suite's prompts are kept up to N (a learn's larger size
    cannot bring back what a smaller buffer at init sampled away); options for a method init does not protect
    with, or a bad value, are refused before anything is written."""
    torch.set_num_threads(1)
    held = {}
    for size in (256, 1024):
        root = tmp_path / f"home-{size}"
        # as the CLI gives it: a string, recorded as the method reads it
        init_home_from_model(root, "embedded", protect=("rehearsal",), options={"rehearsal": {"size": str(size)}})
        v1 = Home.open(root).version("v1")["record"]["config"]["protection"]
        # the home's defaults, with the size given over them
        assert v1["settings"] == {"rehearsal": {**defaults.PROTECTION_SETTINGS["rehearsal"], "size": size}}
        groups = _state(Home.open(root), "v1")["rehearsal"][1]["groups"]
        held[size] = sum(map(len, groups))
    assert held == {256: 256, 1024: 6 * protection.PER_ENTRY}
    # a later learn keeps the home's settings unless it sets its own
    root = tmp_path / "home-1024"
    file, = _skill_files(tmp_path, 1)
    # (the second starts from the first's state, the suite's 768 and the skill's prompts, cut to its 512)
    for options, size, kept in ((None, 1024, 768), ({"rehearsal": {"size": 512}}, 512, 512)):
        outcome = learn_in_home(root, file, "sft+rehearsal", options=options, epochs=1, force="test", quiet=True)
        record = Home.open(root).version(outcome.version)["record"]
        assert record["config"]["recipe"]["options"]["rehearsal"]["size"] == size
        assert record["config"]["protection"]["notes"] == [
            f"rehearsal: continues the champion's state ({kept} prompts held, size {size})"]
    for options in ({"ewc": {"lam": 1.0}}, {"rehearsal": {"size": "big"}}, {"rehearsal": {"size": 0}}):
        with pytest.raises(RetainError) as raised:
            init_home_from_model(tmp_path / "bad", "embedded", protect=("rehearsal",), options=options)
        assert raised.value.field == "--set" and not (tmp_path / "bad").exists(), options



def test_a_kfac_home_keeps_one_kronecker_term_per_learn_and_its_default_fisher_is_sampled(tmp_path):
    """``retain init --protection kfac``: v1 holds the suite's Kronecker factors, a learn with no method trains
    SDFT with kfac and its version holds one more term, anchored at the candidate's weights."""
    torch.set_num_threads(1)
    init_home_from_model(tmp_path / "home", "embedded", protect=("kfac",),
                         options={"kfac": {"fisher_samples": 8, "rest_samples": 2}})
    home = Home.open(tmp_path / "home")
    assert home.version("v1")["record"]["config"]["learn"]["method"] == "sdft+kfac"
    tensors, extra = _state(home, "v1")["kfac"]
    assert extra["tasks"] == 1 and any(key.startswith("0.A.") for key in tensors)
    path = _skill_files(tmp_path, 1)[0]
    outcome = learn_in_home(tmp_path / "home", path, options={"sdft": OPTIONS["sdft"]}, epochs=1, force="test",
                            quiet=True)
    record = Home.open(tmp_path / "home").version(outcome.version)["record"]
    assert record["method"] == "sdft+kfac"
    assert record["options"]["recipe"]["options"]["kfac"]["fisher"] == "sampled"
    tensors, extra = _state(Home.open(tmp_path / "home"), outcome.version)["kfac"]
    assert extra["tasks"] == 2 and any(key.startswith("1.G.") for key in tensors)
