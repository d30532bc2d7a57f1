"""EWC: the penalty and its gradient against their formulas, the Fisher against softmax regression's
analytic Fisher, and online EWC's decayed sum (Kirkpatrick et al. 2017; Schwarz et al. 2018)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from retain.methods.ewc import EWC, diagonal_fisher
from retain.models.classifier import ClassifierAdapter, Labeled

D, C, N = 3, 4, 12


@pytest.fixture(autouse=True)
def one_thread():
    # batched per-prediction backward passes on tiny tensors crawl when two threads share a busy machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def softmax_regression(seed: int = 0) -> ClassifierAdapter:
    torch.manual_seed(seed)
    return ClassifierAdapter(nn.Linear(D, C).double())


def examples(seed: int = 1, n: int = N) -> list[Labeled]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, D, generator=gen, dtype=torch.float64)
    y = torch.randint(0, C, (n,), generator=gen)
    return [Labeled(x[i], int(y[i])) for i in range(n)]


def analytic_fisher(adapter: ClassifierAdapter, data: list[Labeled], labels: str) -> dict[str, torch.Tensor]:
    """Softmax regression: g_c = (e_c - p) x^T, so the exact per-example Fisher diagonal is
    (p_k - p_k^2) x_j^2 (the diagonal of (diag(p) - pp^T) kron xx^T); the empirical one (e_y - p)_k^2 x_j^2."""
    x = torch.stack([e.x for e in data])
    p = torch.softmax(adapter.model(x), dim=-1).detach()
    if labels == "exact":
        weight = p - p ** 2
    else:
        onehot = torch.nn.functional.one_hot(torch.tensor([e.y for e in data]), C).double()
        weight = (onehot - p) ** 2
    return {"weight": torch.einsum("nk,nj->kj", weight, x ** 2) / len(data), "bias": weight.mean(0)}


@pytest.mark.parametrize("estimator", ["exact", "empirical"])
def test_fisher_of_softmax_regression_is_analytic(estimator: str) -> None:
    adapter = softmax_regression()
    data = examples()
    fisher = diagonal_fisher(adapter, data, estimator, limit=100, chunk=5, seed=0)
    expected = analytic_fisher(adapter, data, estimator)
    for name in ("weight", "bias"):
        torch.testing.assert_close(fisher[name].double(), expected[name], rtol=1e-5, atol=1e-7)


def test_sampled_fisher_is_unbiased_for_the_exact_one() -> None:
    adapter = softmax_regression()
    data = examples(n=1) * 2000
    fisher = diagonal_fisher(adapter, data, "sampled", limit=2000, chunk=100, seed=0)
    expected = analytic_fisher(adapter, data[:1], "exact")
    torch.testing.assert_close(fisher["weight"].double(), expected["weight"], rtol=0.1, atol=1e-3)


def test_fisher_is_per_prediction_not_the_squared_batch_mean() -> None:
    """The empirical Fisher is the mean over examples of each example's squared gradient, exactly (the squared
    batch-mean gradient, or any scaling of the right value, fails)."""
    adapter = softmax_regression()
    data = examples()
    fisher = diagonal_fisher(adapter, data, "empirical", limit=100, chunk=N, seed=0)
    model = adapter.model
    squares = {"weight": torch.zeros_like(model.weight, dtype=torch.float64),
               "bias": torch.zeros_like(model.bias, dtype=torch.float64)}
    for e in data:
        logp = torch.log_softmax(model(e.x.unsqueeze(0)), -1)[0, e.y]
        gw, gb = torch.autograd.grad(logp, [model.weight, model.bias])
        squares["weight"] += gw.double() ** 2 / len(data)
        squares["bias"] += gb.double() ** 2 / len(data)
    torch.testing.assert_close(fisher["weight"].double(), squares["weight"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fisher["bias"].double(), squares["bias"], rtol=1e-5, atol=1e-7)


def test_fisher_ignores_masked_classes_and_stays_finite() -> None:
    adapter = softmax_regression()
    data = [Labeled(e.x, e.y % 2, (0, 1)) for e in examples()]
    fisher = diagonal_fisher(adapter, data, "exact", limit=100, chunk=4, seed=0)
    assert all(torch.isfinite(f).all() for f in fisher.values())
    # excluded outputs have zero probability, so their rows carry no information
    assert fisher["weight"][2:].abs().max() < 1e-12
    assert fisher["weight"][:2].abs().min() > 0


def test_penalty_is_zero_at_the_anchor_and_its_gradient_is_lambda_f_delta() -> None:
    adapter = softmax_regression()
    ewc = EWC(EWC.Config(lam=7.0, fisher="exact"))
    assert ewc.penalty(adapter) is None
    ewc.after_task(adapter, examples())
    anchor, fisher = ewc.tasks[0]
    assert float(ewc.penalty(adapter).detach()) == 0.0
    delta = {name: torch.randn_like(p) * 0.1 for name, p in adapter.trainable_parameters().items()}
    with torch.no_grad():
        for name, p in adapter.trainable_parameters().items():
            p.add_(delta[name])
    value = ewc.penalty(adapter)
    expected = sum((7.0 / 2 * fisher[n] * delta[n] ** 2).sum() for n in delta)
    torch.testing.assert_close(value, expected.to(value.dtype))
    value.backward()
    for name, p in adapter.trainable_parameters().items():
        torch.testing.assert_close(p.grad, (7.0 * fisher[name] * delta[name]).to(p.dtype))


def _shift(adapter: ClassifierAdapter, amount: float) -> None:
    with torch.no_grad():
        for p in adapter.trainable_parameters().values():
            p.add_(amount)


def test_online_ewc_decays_the_old_fisher_and_keeps_one_anchor() -> None:
    adapter = softmax_regression()
    ewc = EWC(EWC.Config(lam=1.0, mode="online", gamma=0.5, fisher="empirical", seed=3))
    first, second = examples(seed=1), examples(seed=2)
    ewc.after_task(adapter, first)
    f1 = {n: f.clone() for n, f in ewc.tasks[0][1].items()}
    _shift(adapter, 0.3)
    ewc.after_task(adapter, second)
    f2 = diagonal_fisher(adapter, second, "empirical", limit=500, chunk=64, seed=4)
    assert len(ewc.tasks) == 1
    anchor, combined = ewc.tasks[0]
    for name, p in adapter.trainable_parameters().items():
        torch.testing.assert_close(combined[name], 0.5 * f1[name] + f2[name])
        assert torch.equal(anchor[name], p.detach())


def test_separate_ewc_keeps_one_anchor_and_fisher_per_task() -> None:
    adapter = softmax_regression()
    ewc = EWC(EWC.Config(lam=2.0, fisher="empirical"))
    ewc.after_task(adapter, examples(seed=1))
    _shift(adapter, 0.3)
    ewc.after_task(adapter, examples(seed=2))
    assert len(ewc.tasks) == 2
    _shift(adapter, 0.1)
    expected = sum((1.0 * f[n] * (p.detach() - a[n]) ** 2).sum()
                   for a, f in ewc.tasks for n, p in adapter.trainable_parameters().items())
    torch.testing.assert_close(ewc.penalty(adapter), expected)
    params = sum(p.numel() for p in adapter.trainable_parameters().values())
    assert ewc.memory_bytes() == 2 * params * 8 + 2 * params * 4  # float64 anchors, float32 Fishers


@pytest.mark.parametrize("estimator", ["exact", "sampled", "empirical"])
def test_importance_is_the_same_when_the_gradient_rows_come_a_few_at_a_time(monkeypatch, estimator) -> None:
    # a causal LM makes one prediction per token, so per-prediction gradients come in slices of rows; the
    # slices must cover every row exactly once, with the exact estimator's weights matched row for row
    from retain.methods import ewc as ewc_module
    from retain.methods.mas import output_sensitivity

    adapter, data = softmax_regression(), examples(n=7)
    whole = diagonal_fisher(adapter, data, estimator, limit=100, chunk=1000, seed=0)
    sensitivity = output_sensitivity(adapter, data, limit=100, chunk=1000, seed=0)
    monkeypatch.setattr(ewc_module, "GRAD_FLOATS_PER_CALL", 3 * (D * C + C))  # three rows per batched call
    sliced = diagonal_fisher(adapter, data, estimator, limit=100, chunk=1000, seed=0)
    sliced_sensitivity = output_sensitivity(adapter, data, limit=100, chunk=1000, seed=0)
    for name in whole:
        torch.testing.assert_close(sliced[name], whole[name])
        torch.testing.assert_close(sliced_sensitivity[name], sensitivity[name])
        assert float(whole[name].abs().sum()) > 0
