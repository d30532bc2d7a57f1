"""SDFT composed with EWC and replay on a causal LM, and the options the language benchmark gives them."""

import pytest
import torch

from retain.data.synthetic import new_skills
from retain.bench import language_tuning as language
from retain.domains.language import EMBEDDED_SDFT, Budget
from retain.methods.ewc import EWC
from retain.methods.registry import parse_method
from retain.methods.replay import Replay
from retain.train.loop import TrainConfig, train_task

# short rollouts keep the random tiny model's sampling cheap; sampled Fisher as the benchmark uses on an LM
OPTIONS = {"sdft": {"max_new_tokens": 4, "skip_tokens": 0},
           "ewc": {"lam": 10.0, "fisher": "sampled", "fisher_samples": 4, "batch_size": 1},
           "replay": {"size": 4, "ratio": 1.0}}


def one_step(adapter, objective, plugins, examples, seed):
    """Learn ``examples`` in exactly one optimiser step."""
    cfg = TrainConfig(epochs=1, batch_size=len(examples), lr=1e-2, seed=seed)
    return train_task(adapter, objective, plugins, examples, cfg)


def record_batch_sizes(objective):
    sizes = []
    loss = objective.loss

    def recording(adapter, batch):
        sizes.append(len(batch))
        return loss(adapter, batch)
    objective.loss = recording
    return sizes


@pytest.mark.parametrize("spec", ["sdft+ewc", "sdft+replay"])
def test_sdft_composes_with_a_consolidation_method_on_a_causal_lm(spec, tiny_adapter):
    torch.set_num_threads(1)
    adapter = tiny_adapter()
    first, second = (s.train for s in new_skills(n_train=4, n_test=1, seed=0)[:2])
    objective, plugins = parse_method(spec, {k: v for k, v in OPTIONS.items() if k in spec.split("+")})
    sizes = record_batch_sizes(objective)
    before = {n: p.detach().clone() for n, p in adapter.model.named_parameters()}
    stats = one_step(adapter, objective, plugins, first, seed=0)
    assert stats.steps == 1 and all(torch.isfinite(torch.tensor(stats.losses)))
    assert any(not torch.equal(before[n], p) for n, p in adapter.model.named_parameters())
    plugin = plugins[0]
    if isinstance(plugin, EWC):
        (anchor, fisher), = plugin.tasks
        # full fine-tuning: every weight of the model has an importance
        assert set(fisher) == {n for n, _ in adapter.model.named_parameters()}
        assert sum(float(f.sum()) for f in fisher.values()) > 0
        assert plugin.penalty(adapter).item() == 0.0
    else:
        assert isinstance(plugin, Replay) and plugin.buffer.items == first
    one_step(adapter, objective, plugins, second, seed=1)
    if isinstance(plugin, EWC):
        assert plugin.penalty(adapter).item() > 0
        assert sizes == [4, 4]
    else:
        # the second task's batch carries as many stored examples as new ones, and SDFT trains on all of them
        assert sizes == [4, 8]
    assert objective.memory_bytes() > 0 and plugin.memory_bytes() > 0


def test_under_lora_ewc_weighs_only_the_adapter_weights(tiny_adapter):
    torch.set_num_threads(1)
    adapter = tiny_adapter(lora=True)
    first, second = (s.train for s in new_skills(n_train=4, n_test=1, seed=0)[:2])
    objective, plugins = parse_method("sdft+ewc", {k: OPTIONS[k] for k in ("sdft", "ewc")})
    one_step(adapter, objective, plugins, first, seed=0)
    ewc = plugins[0]
    (anchor, fisher), = ewc.tasks
    lora = set(adapter.trainable_parameters())
    assert lora and all("lora_" in name for name in lora)
    assert set(fisher) == set(anchor) == lora
    assert ewc.penalty(adapter).item() == 0.0
    params = dict(adapter.model.named_parameters())
    base = next(n for n, p in params.items() if not p.requires_grad and n.endswith("q_proj.base_layer.weight"))
    with torch.no_grad():
        params[base].add_(1.0)
    assert ewc.penalty(adapter).item() == 0.0
    name = next(n for n in lora if float(fisher[n].sum()) > 0)
    with torch.no_grad():
        params[name].add_(0.5)
    expected = ewc.config.lam / 2 * float((fisher[name] * 0.25).sum())
    assert ewc.penalty(adapter).item() == pytest.approx(expected, rel=1e-5)
    with torch.no_grad():
        params[name].sub_(0.5)
        params[base].sub_(1.0)
    one_step(adapter, objective, plugins, second, seed=1)
    assert ewc.penalty(adapter).item() > 0


def test_language_options_are_the_demos_and_every_method_builds():
    for label, spec in language.METHODS.items():
        recipe = language.label_recipe(label, 7, Budget())
        objective, plugins = recipe.methods()
        assert recipe.method == spec and recipe.train.epochs == Budget().epochs
        assert recipe.train.lr == pytest.approx(1e-4 * (3.0 if label == "sdft+rehearsal-ce-3x" else 1.0))
        if "sdft" in spec.split("+"):
            for key, (value, _) in EMBEDDED_SDFT.items():
                assert getattr(objective.config, key) == value
            assert objective.config.teacher == "ema"
        for plugin in plugins:
            if isinstance(plugin, EWC):
                assert plugin.config.fisher == "sampled" and plugin.config.seed == 7
                chosen = language.PROTECTED[label].options if label in language.PROTECTED else language.OPTIONS[label]
                assert plugin.config.lam == chosen["ewc"]["lam"]
            if isinstance(plugin, Replay):
                assert plugin.config.seed == 7
                assert plugin.config.size == language.OPTIONS[label]["replay"]["size"]
    for label, grid in language.GRID.items():
        for chosen in grid:
            parse_method(language.METHODS[label], language.method_options(label, 0, chosen))


def test_the_protected_recipe_is_the_retention_benchs():
    """One label, one training: the consolidation bench's protected row trains as the retention bench's does."""
    from retain.bench.retention import RECIPES

    label = "sdft+rehearsal-ce-3x"
    recipe = language.label_recipe(label, 0, Budget())
    assert recipe.method == RECIPES[label].method
    assert recipe.train.lr == pytest.approx(RECIPES[label].rate(1e-4))
    assert recipe.options["rehearsal"] == {**RECIPES[label].options["rehearsal"]}
