"""SI, MAS and L2 importances and penalties against their closed forms (Zenke et al. 2017; Aljundi et al.
2018; Kirkpatrick et al. 2017's L2 baseline)."""

from __future__ import annotations

import torch
from torch import nn

from retain.methods.l2 import L2
from retain.methods.mas import MAS
from retain.methods.si import SI
from retain.models.classifier import ClassifierAdapter, Labeled


class VectorAdapter:
    """One parameter vector theta; SI only reads parameters and gradients."""

    def __init__(self, theta: torch.Tensor) -> None:
        self.model = nn.Module()
        self.model.theta = nn.Parameter(theta.clone())

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        return {"theta": self.model.theta}


def test_si_importance_on_a_quadratic_with_sgd_matches_the_closed_form() -> None:
    # L = 1/2 sum_k a_k (theta_k - b_k)^2 with SGD: theta_t - b = r^t (theta_0 - b), r = 1 - eta a, so
    # omega = sum_t -g_t dtheta_t = eta sum_t g_t^2 = eta a^2 (theta_0 - b)^2 (1 - r^(2n)) / (1 - r^2).
    a = torch.tensor([0.5, 1.0, 2.0, 0.0], dtype=torch.float64)
    b = torch.tensor([1.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    theta0 = torch.tensor([0.0, 0.5, -1.0, 2.0], dtype=torch.float64)
    eta, n, xi, c = 0.1, 25, 0.1, 3.0
    adapter = VectorAdapter(theta0)
    theta = adapter.model.theta
    si = SI(SI.Config(c=c, xi=xi))
    optimizer = torch.optim.SGD([theta], lr=eta)
    si.before_task(adapter)
    for _ in range(n):
        optimizer.zero_grad()
        (0.5 * (a * (theta - b) ** 2).sum()).backward()
        si.after_backward(adapter)
        optimizer.step()
        si.after_step(adapter)
    si.after_task(adapter, [])
    r = 1 - eta * a
    omega = eta * a ** 2 * (theta0 - b) ** 2 * (1 - r ** (2 * n)) / (1 - r ** 2).clamp_min(1e-300)
    delta = (r ** n - 1) * (theta0 - b)
    torch.testing.assert_close(si.importance["theta"], omega / (delta ** 2 + xi))
    torch.testing.assert_close(theta.detach() - b, r ** n * (theta0 - b))
    assert si.importance["theta"][3] == 0.0  # a parameter the loss ignores is free to move

    theta.grad = None
    with torch.no_grad():
        theta.add_(0.2)
    penalty = si.penalty(adapter)
    penalty.backward()
    torch.testing.assert_close(theta.grad, 2 * c * si.importance["theta"] * 0.2, check_dtype=False)


def test_si_sums_importance_over_tasks() -> None:
    adapter = VectorAdapter(torch.zeros(2, dtype=torch.float64))
    si = SI(SI.Config(xi=1.0))
    theta = adapter.model.theta
    per_task = []
    for target in (torch.ones(2), -torch.ones(2)):
        optimizer = torch.optim.SGD([theta], lr=0.5)
        si.before_task(adapter)
        start = theta.detach().clone()
        path = torch.zeros(2, dtype=torch.float64)
        for _ in range(3):
            optimizer.zero_grad()
            ((theta - target) ** 2).sum().backward()
            g = theta.grad.clone()
            si.after_backward(adapter)
            before = theta.detach().clone()
            optimizer.step()
            si.after_step(adapter)
            path -= g * (theta.detach() - before)
        si.after_task(adapter, [])
        per_task.append(path / ((theta.detach() - start) ** 2 + 1.0))
    torch.testing.assert_close(si.importance["theta"], per_task[0] + per_task[1])


def linear_adapter() -> ClassifierAdapter:
    torch.manual_seed(0)
    return ClassifierAdapter(nn.Linear(3, 4).double())


def data(seed: int, n: int = 10) -> list[Labeled]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen, dtype=torch.float64)
    return [Labeled(x[i], 0) for i in range(n)]


def test_mas_importance_of_a_linear_layer_matches_its_formula() -> None:
    # f = W x + b: d ||f||^2 / dW_ij = 2 f_i x_j and d/db_i = 2 f_i, so Omega is their mean absolute value
    adapter = linear_adapter()
    mas = MAS(MAS.Config(lam=2.0, batch_size=3))
    first, second = data(1), data(2)
    expected = []
    for batch in (first, second):
        x = torch.stack([e.x for e in batch])
        f = adapter.model(x).detach()
        expected.append({"weight": (2 * f[:, :, None] * x[:, None, :]).abs().mean(0), "bias": (2 * f).abs().mean(0)})
        mas.after_task(adapter, batch)
    for name in ("weight", "bias"):
        torch.testing.assert_close(mas.importance[name].double(), expected[0][name] + expected[1][name])

    with torch.no_grad():
        adapter.model.weight.add_(0.1)
    mas.penalty(adapter).backward()
    torch.testing.assert_close(adapter.model.weight.grad, (2 * 2.0 * mas.importance["weight"] * 0.1).double())
    assert float(mas.penalty(adapter).detach()) > 0


def test_l2_penalty_and_gradient() -> None:
    adapter = linear_adapter()
    l2 = L2(L2.Config(lam=3.0))
    assert l2.penalty(adapter) is None and l2.memory_bytes() == 0
    l2.after_task(adapter, [])
    assert float(l2.penalty(adapter).detach()) == 0.0
    with torch.no_grad():
        adapter.model.bias.sub_(0.5)
    value = l2.penalty(adapter)
    torch.testing.assert_close(value, torch.tensor(3.0 / 2 * 4 * 0.25, dtype=value.dtype))
    value.backward()
    torch.testing.assert_close(adapter.model.bias.grad, torch.full((4,), -1.5, dtype=torch.float64))
    assert l2.memory_bytes() == (12 + 4) * 8
