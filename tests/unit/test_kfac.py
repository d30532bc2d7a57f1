"""Kronecker-factored online Laplace (``kfac``): its factors are the hand-computed second moments, its penalty is
the explicit quadratic form with the full Kronecker product, its gradient is autograd's of that form, and it
covers a causal LM's linear layers (only LoRA's under LoRA)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from retain.data.synthetic import new_skills
from retain.methods.ewc import diagonal_fisher
from retain.methods.kfac import KFAC, kronecker_factors, linear_layers
from retain.methods.registry import parse_method
from retain.models.classifier import ClassifierAdapter, Labeled
from retain.train.loop import TrainConfig, train_task


def _examples(n: int, inputs: int, classes: int, seed: int = 0) -> list[Labeled]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, inputs, generator=gen, dtype=torch.float64)
    return [Labeled(x[i], i % classes) for i in range(n)]


def _net(seed: int = 0) -> ClassifierAdapter:
    torch.manual_seed(seed)
    # in != hidden != out, so a transposed factor or difference cannot go unnoticed by its shape alone
    return ClassifierAdapter(nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 4)).double())


def test_one_layers_factors_are_the_input_moment_and_the_softmax_fisher():
    """For logits = W x + b, d log p_c / d s = e_c - p, so the exact G is mean_n (diag(p_n) - p_n p_n^T) and A
    is mean_n [x_n, 1][x_n, 1]^T."""
    torch.manual_seed(0)
    adapter = ClassifierAdapter(nn.Linear(3, 4).double())
    examples = _examples(7, 3, 4)
    factors, predictions = kronecker_factors(adapter, examples, "exact", limit=100, batch_size=3, seed=0)
    (a, g), = factors.values()
    x = torch.stack([e.x for e in examples])
    rows = torch.cat([x, torch.ones(7, 1, dtype=x.dtype)], dim=1)
    p = adapter.model(x).softmax(-1).detach()
    assert predictions == 7
    torch.testing.assert_close(a, rows.T @ rows / 7)
    torch.testing.assert_close(g, (torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)).mean(0))


def test_on_one_example_the_kronecker_fisher_is_exact_and_its_diagonal_is_ewcs():
    """With one example a single layer's Fisher is exactly A (x) G; its diagonal is what EWC's exact
    estimator (an independent per-prediction-gradient computation) finds for the weight."""
    torch.manual_seed(1)
    adapter = ClassifierAdapter(nn.Linear(3, 4, bias=False).double())
    example = _examples(1, 3, 4)
    (a, g), = kronecker_factors(adapter, example, "exact", limit=1, batch_size=1, seed=0)[0].values()
    fisher = diagonal_fisher(adapter, example, "exact", limit=1, chunk=64, seed=0)["weight"]
    # column-major vec(W) lists W[:, 0] first, so the diagonal of A (x) G reshaped to (in, out) is W^T's Fisher
    torch.testing.assert_close(torch.kron(a, g).diagonal().reshape(3, 4).T, fisher.double())


def _explicit(plugin: KFAC, adapter: ClassifierAdapter) -> torch.Tensor:
    """lam/2 * sum_t gamma^(T-t) sum_layers vec(dW)^T (A_t (x) G_t) vec(dW), vec column-major, bias last."""
    params = adapter.trainable_parameters()
    total = torch.zeros((), dtype=torch.float64)
    count = len(plugin.terms)
    for t, (factors, _) in enumerate(plugin.terms):
        for key, (a, g) in factors.items():
            bias = key.replace("weight", "bias")
            w = torch.cat([params[key], params[bias].unsqueeze(1)], 1)
            w0 = torch.cat([plugin.anchor[key], plugin.anchor[bias].unsqueeze(1)], 1)
            v = (w - w0).T.reshape(-1)
            total = total + plugin.config.gamma ** (count - 1 - t) * v @ torch.kron(a, g) @ v
    return plugin.config.lam / 2 * total


def _two_tasks(gamma: float) -> tuple[KFAC, ClassifierAdapter]:
    adapter = _net()
    plugin = KFAC(KFAC.Config(lam=3.0, gamma=gamma, fisher="exact"))
    plugin.after_task(adapter, _examples(9, 3, 4, seed=1))
    with torch.no_grad():
        for p in adapter.model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    plugin.after_task(adapter, _examples(9, 3, 4, seed=2))
    # online Laplace: the mean is the latest parameters
    for name, p in adapter.trainable_parameters().items():
        assert torch.equal(plugin.anchor[name], p.detach())
    with torch.no_grad():
        for p in adapter.model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return plugin, adapter


@pytest.mark.parametrize("gamma", [1.0, 0.5])
def test_penalty_and_gradient_are_the_full_kronecker_quadratic_forms(gamma):
    plugin, adapter = _two_tasks(gamma)
    assert len(plugin.terms) == 2 and all(len(factors) == 2 for factors, _ in plugin.terms)
    penalty = plugin.penalty(adapter)
    explicit = _explicit(plugin, adapter)
    torch.testing.assert_close(penalty, explicit)
    params = list(adapter.trainable_parameters().values())
    got = torch.autograd.grad(penalty, params)
    want = torch.autograd.grad(_explicit(plugin, adapter), params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    # at the anchor (the latest parameters) there is nothing to pay
    with torch.no_grad():
        for name, p in adapter.trainable_parameters().items():
            p.copy_(plugin.anchor[name])
    assert plugin.penalty(adapter).item() == 0.0


def test_the_factors_order_matters():
    """The planted transpose the test above guards against: swapping A and G (vec(dW)^T (G (x) A) vec(dW)) is a
    different number on a layer whose input and output sizes differ, with padding to make the shapes fit."""
    plugin, adapter = _two_tasks(1.0)
    factors, _ = plugin.terms[0]
    key = "2.weight"
    a, g = factors[key]
    params = adapter.trainable_parameters()
    diff = torch.cat([params[key] - plugin.anchor[key], (params["2.bias"] - plugin.anchor["2.bias"]).unsqueeze(1)], 1)
    v_col, v_row = diff.T.reshape(-1), diff.reshape(-1)
    assert not torch.isclose(v_col @ torch.kron(a, g) @ v_col, v_row @ torch.kron(a, g) @ v_row)


def test_state_round_trip_gives_the_same_penalty():
    plugin, adapter = _two_tasks(0.7)
    fresh = KFAC(KFAC.Config(lam=3.0, gamma=0.7))
    fresh.load_state({k: v.clone() for k, v in plugin.state_dict().items()}, dict(plugin.extra_state()))
    torch.testing.assert_close(fresh.penalty(adapter), plugin.penalty(adapter))
    assert fresh.memory_bytes() == plugin.memory_bytes() > 0
    with pytest.raises(ValueError):
        fresh.load_state({}, {"method": "ewc", "tasks": 0, "learned": 0})


def test_kfac_holds_a_first_task_where_naive_training_forgets_it():
    """Two conflicting tasks (the second relabels the first's inputs): after the second task the first task's
    loss has risen less than a tenth as much under kfac as under plain training."""
    first = _examples(40, 3, 4, seed=3)
    second = [Labeled(e.x, (e.y + 1) % 4) for e in first]

    def first_loss_rise(spec: str) -> float:
        adapter = _net(seed=4)
        adapter.model.float()
        objective, plugins = parse_method(spec, {"kfac": {"lam": 50.0}} if "kfac" in spec else {})
        cfg = TrainConfig(epochs=20, batch_size=8, lr=0.05, seed=0, grad_clip=0.0, schedule="constant")
        data = [[Labeled(e.x.float(), e.y) for e in task] for task in (first, second)]
        losses = []
        for task in data:
            train_task(adapter, objective, plugins, task, cfg)
            with torch.no_grad():
                losses.append(float(nn.functional.cross_entropy(*adapter.predictions(data[0]))))
        return losses[1] - losses[0]

    naive = first_loss_rise("sft")
    assert naive > 0.5 and first_loss_rise("sft+kfac") < 0.1 * naive


def test_on_a_causal_lm_every_linear_is_covered_and_the_rest_gets_a_diagonal(tiny_adapter):
    torch.set_num_threads(1)
    adapter = tiny_adapter()
    first, second = (s.train for s in new_skills(n_train=4, n_test=1, seed=0)[:2])
    plugin = KFAC(KFAC.Config(lam=10.0, fisher="sampled", fisher_samples=4, batch_size=2))
    plugin.protect(adapter, first)
    factors, diagonal = plugin.terms[0]
    layers = linear_layers(adapter)
    assert set(factors) == set(layers) and layers
    covered = {n for layer in layers.values() for n in (layer.weight, layer.bias) if n}
    assert set(diagonal) == set(adapter.trainable_parameters()) - covered
    assert all(float(g.trace()) > 0 and float(a.trace()) > 0 for a, g in factors.values())
    assert plugin.penalty(adapter).item() == 0.0
    key = next(k for k in factors if "mlp.up_proj" in k)
    weight = adapter.trainable_parameters()[key]
    with torch.no_grad():
        step = 0.01 * torch.randn_like(weight)
        weight.add_(step)
    a, g = factors[key]
    expected = 10.0 / 2 * float(((g @ step @ a) * step).sum())
    assert expected > 0 and plugin.penalty(adapter).item() == pytest.approx(expected, rel=1e-4)
    with torch.no_grad():
        weight.sub_(step)
    objective, _ = parse_method("sdft", {"sdft": {"max_new_tokens": 4, "skip_tokens": 0}})
    seen = []
    penalty = plugin.penalty
    plugin.penalty = lambda adapter: seen.append(penalty(adapter)) or seen[-1]
    train_task(adapter, objective, [plugin], second, TrainConfig(epochs=1, batch_size=2, lr=1e-2, seed=0))
    # the second step pays for how far the first moved the weights; the task ends with a second term
    assert len(seen) == 2 and seen[0].item() < 1e-12 < seen[1].item() and len(plugin.terms) == 2


def test_under_lora_only_the_adapters_layers_are_covered(tiny_adapter):
    torch.set_num_threads(1)
    adapter = tiny_adapter(lora=True)
    first = new_skills(n_train=4, n_test=1, seed=0)[0].train
    plugin = KFAC(KFAC.Config(fisher="sampled", fisher_samples=4, batch_size=2))
    plugin.protect(adapter, first)
    factors, diagonal = plugin.terms[0]
    assert factors and all("lora_" in key for key in factors) and not diagonal
    rank = next(a for key, (a, g) in factors.items() if "lora_B" in key).shape[0]
    assert rank == next(p for n, p in adapter.trainable_parameters().items() if "lora_A" in n).shape[0]
    params = dict(adapter.model.named_parameters())
    base = next(n for n in params if n.endswith("q_proj.base_layer.weight"))
    with torch.no_grad():
        params[base].add_(1.0)
    assert plugin.penalty(adapter).item() == 0.0


def test_on_a_causal_lm_a_counts_the_positions_that_reach_a_prediction_and_g_is_per_prediction(tiny_adapter):
    """Positions are the examples of a shared weight: A averages the input rows whose output reaches a
    prediction (padding does not), and G sums g g^T over those rows and divides by the predictions, so a
    padded batch gives what its examples give one at a time, weighted by their predictions."""
    torch.set_num_threads(1)
    adapter = tiny_adapter()
    skill = new_skills(n_train=4, n_test=1, seed=0)[0]
    examples = skill.train[:3]
    module = adapter.model.get_submodule("model.layers.0.self_attn.v_proj")
    key = next(k for k, layer in linear_layers(adapter).items() if layer.module is module)
    (a, g) = kronecker_factors(adapter, examples, "empirical", limit=10, batch_size=3, seed=0)[0][key]
    captured = {}
    handle = module.register_forward_hook(lambda m, args, out: captured.update(x=args[0], out=out))
    logits, targets = adapter.predictions(examples)
    handle.remove()
    chosen = torch.log_softmax(logits.float(), -1).gather(1, targets.unsqueeze(1)).sum()
    grad, = torch.autograd.grad(chosen, captured["out"])
    grad = grad.reshape(-1, grad.shape[-1])
    x = captured["x"].reshape(-1, captured["x"].shape[-1]).detach()
    reached = grad.abs().amax(1) > 0
    # a value row reaches the predictions after it (so more rows than predictions); padding reaches none
    assert logits.shape[0] < int(reached.sum()) < reached.numel()
    torch.testing.assert_close(a, x[reached].T @ x[reached] / int(reached.sum()))
    torch.testing.assert_close(g, grad.T @ grad / logits.shape[0])
