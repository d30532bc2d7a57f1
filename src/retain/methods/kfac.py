"""Kronecker-factored online Laplace: structured curvature instead of a diagonal Fisher.

Ritter, Botev and Barber, "Online Structured Laplace Approximations for Overcoming Catastrophic Forgetting",
NeurIPS 2018. After each task, the curvature of every linear layer's weights ``W`` (``out x in``, the bias as
an extra input column) is approximated by a Kronecker product ``A (x) G`` (K-FAC: Martens and Grosse, ICML
2015), with

- ``A = E[a a^T]``, the second moment of the layer's inputs ``a`` (with a trailing 1 when the bias trains),
- ``G = E[sum_c p_c g_c g_c^T]``, the second moment of the gradients ``g_c = d log p(c|x) / d s`` of the
  log-likelihood with respect to the layer's outputs ``s``, the label drawn from the model's own predictive
  distribution (the true Fisher; ``fisher`` as in :mod:`retain.methods.ewc`: ``exact`` sums over classes,
  ``sampled`` draws one, ``empirical`` uses the true label).

The posterior of the tasks so far is kept online, as in the paper: its mean is the latest parameters
``W*`` and its precision the sum of every task's Kronecker terms (each kept as its own pair of factors: a sum
of Kronecker products is not one), older tasks decayed by ``gamma``. The penalty is

    lam/2 * sum_t gamma^(T-t) * sum_layers tr(dW^T G_t dW A_t),    dW = W - W*,

which is ``lam/2 * vec(dW)^T (A_t (x) G_t) vec(dW)`` without ever forming the Kronecker product. ``lam``
plays the role of the paper's ``N * lambda``: the factors are means over predictions, as EWC's Fisher is.

Every trainable ``nn.Linear`` weight is covered, so under PEFT LoRA the adapter's ``lora_A``/``lora_B``
layers are (their inputs and outputs are what K-FAC needs). A causal LM's positions count as examples (the
"expand" reading of K-FAC for shared weights: Eschenhagen et al., NeurIPS 2023); ``A`` averages the positions
whose outputs reach a prediction. Trainable parameters outside a linear layer (norms, an untied embedding) get
EWC's diagonal Fisher under the same penalty (``rest="diag"``) or are left free (``rest="none"``); that diagonal
costs one backward pass per prediction (a causal LM predicts every answer token), so it is estimated on at most
``rest_samples`` examples. On a causal LM use ``fisher="sampled"``: ``exact`` makes one backward pass per
vocabulary entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from retain.methods.base import Consolidation, tensor_bytes
from retain.methods.ewc import chunks, diagonal_fisher, fisher_problems
from retain.methods.importance import snapshot
from retain.models.adapter import Adapter


@dataclass(frozen=True)
class Layer:
    """A linear layer whose weight trains: its module and the names of its weight and (trainable) bias."""

    module: nn.Linear
    weight: str
    bias: str | None


def linear_layers(adapter: Adapter) -> dict[str, Layer]:
    """Every ``nn.Linear`` of the model whose weight is trainable, keyed by the weight's parameter name. A
    weight shared by several modules (a tied output layer) is covered once, by the first linear using it."""
    names = {id(p): name for name, p in adapter.trainable_parameters().items()}
    layers: dict[str, Layer] = {}
    for module in adapter.model.modules():
        if isinstance(module, nn.Linear) and id(module.weight) in names:
            weight = names[id(module.weight)]
            if weight in layers:
                continue
            bias = names.get(id(module.bias)) if module.bias is not None else None
            layers[weight] = Layer(module, weight, bias)
    return layers


class _Capture:
    """Records each covered layer's inputs and outputs during one forward (a list per layer: a module may be
    called more than once)."""

    def __init__(self, layers: dict[str, Layer]) -> None:
        self.inputs: dict[str, list[torch.Tensor]] = {key: [] for key in layers}
        self.outputs: dict[str, list[torch.Tensor]] = {key: [] for key in layers}
        self.handles = [layer.module.register_forward_hook(self._hook(key)) for key, layer in layers.items()]

    def _hook(self, key: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            self.inputs[key].append(args[0].detach())
            self.outputs[key].append(output)
        return hook

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def _wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 at least (bf16/fp16 activations are summed in float32; float64 stays float64)."""
    return t if t.dtype == torch.float64 else t.float()


def _rows(t: torch.Tensor) -> torch.Tensor:
    return _wide(t.reshape(-1, t.shape[-1]))


def kronecker_factors(adapter: Adapter, examples: list[Any], estimator: str, *, limit: int, batch_size: int,
                      seed: int) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], int]:
    """Each covered layer's ``(A, G)`` over up to ``limit`` of ``examples`` (``batch_size`` per forward), and
    the number of predictions.

    ``A`` is the mean over the layer's input rows that reach a prediction (a row whose output gradient is zero
    for every label, such as padding, is left out); ``G`` is the sum of ``p_c g_c g_c^T`` over classes (one
    label for ``sampled``/``empirical``) and rows, divided by the number of predictions.
    """
    layers = linear_layers(adapter)
    a_sum = {key: None for key in layers}
    g_sum = {key: None for key in layers}
    a_rows = {key: 0 for key in layers}
    predictions = 0
    if not examples or not layers:
        return {}, 0
    gen = torch.Generator().manual_seed(seed)
    with torch.enable_grad():
        for batch in chunks(list(examples), limit, batch_size, seed):
            capture = _Capture(layers)
            try:
                logits, targets = adapter.predictions(batch)
            finally:
                capture.close()
            log_probs = F.log_softmax(_wide(logits), dim=-1)
            n = log_probs.shape[0]
            predictions += n
            if estimator == "exact":
                probs = log_probs.detach().exp()
                passes = [(log_probs[:, c], probs[:, c].sqrt()) for c in range(log_probs.shape[1])]
            else:
                if estimator == "sampled":
                    labels = torch.multinomial(log_probs.detach().exp().cpu(), 1, generator=gen).squeeze(1)
                else:
                    labels = targets.cpu()
                chosen = log_probs.gather(1, labels.to(log_probs.device).unsqueeze(1)).squeeze(1)
                passes = [(chosen, torch.ones_like(chosen))]
            keys = [k for k in layers if capture.outputs[k]]
            outputs = [o for k in keys for o in capture.outputs[k]]
            reached = {k: [torch.zeros(_rows(o).shape[0], dtype=torch.bool, device=o.device)
                           for o in capture.outputs[k]] for k in keys}
            for index, (log_p, weight) in enumerate(passes):
                if not bool((weight > 0).any()):
                    continue
                grads = torch.autograd.grad((log_p * weight).sum(), outputs, retain_graph=index < len(passes) - 1,
                                            allow_unused=True)
                position = 0
                for k in keys:
                    for call, out in enumerate(capture.outputs[k]):
                        g = grads[position]
                        position += 1
                        if g is None:
                            continue
                        g = _rows(g)
                        reached[k][call] |= g.abs().amax(dim=1) > 0
                        term = g.T @ g
                        g_sum[k] = term if g_sum[k] is None else g_sum[k] + term
            for k in keys:
                for call, a in enumerate(capture.inputs[k]):
                    a = _rows(a)[reached[k][call]]
                    if layers[k].bias is not None:
                        a = torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)], dim=1)
                    term = a.T @ a
                    a_sum[k] = term if a_sum[k] is None else a_sum[k] + term
                    a_rows[k] += a.shape[0]
    factors = {}
    for k in layers:
        if a_sum[k] is None or g_sum[k] is None or a_rows[k] == 0:
            continue
        factors[k] = ((a_sum[k] / a_rows[k]).cpu(), (g_sum[k] / max(predictions, 1)).cpu())
    return factors, predictions


class _Subset:
    """An adapter whose trainable parameters are some of another's (EWC's diagonal Fisher on the rest)."""

    def __init__(self, adapter: Adapter, names: list[str]) -> None:
        self.model = adapter.model
        self._adapter = adapter
        self._names = names

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        params = self._adapter.trainable_parameters()
        return {name: params[name] for name in self._names}

    def predictions(self, batch: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._adapter.predictions(batch)


def _stacked(layer: Layer, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """The layer's weight with its bias as a last column (``out x (in + 1)``), or the weight alone."""
    weight = params[layer.weight]
    if layer.bias is None:
        return weight
    return torch.cat([weight, params[layer.bias].unsqueeze(1)], dim=1)


def kronecker_penalty(diff: torch.Tensor, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``tr(dW^T G dW A) = vec(dW)^T (A (x) G) vec(dW)`` for ``dW = diff`` (``out x in``)."""
    return ((g @ diff @ a) * diff).sum()


class KFAC(Consolidation):
    """Online Laplace with Kronecker-factored curvature per linear layer (Ritter, Botev and Barber 2018)."""

    name = "kfac"
    # the curvature needs each prediction's output gradients and the whole weight matrix: not under FSDP
    per_prediction_gradients = True

    @dataclass
    class Config:
        lam: float = 100.0
        gamma: float = 1.0
        fisher: str = "exact"
        fisher_samples: int = 500
        batch_size: int = 64
        rest: str = "diag"
        rest_samples: int = 64
        seed: int = 0

        def problems(self) -> Iterator[tuple[str, str]]:
            yield from fisher_problems(self)
            if self.rest_samples < 1:
                yield "rest_samples", f"must be >= 1, got {self.rest_samples}"
            if self.rest not in ("diag", "none"):
                yield "rest", f"must be diag or none, got {self.rest!r}"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.anchor: dict[str, torch.Tensor] | None = None
        # one entry per task, oldest first: the layers' (A, G) and the diagonal Fisher of the rest
        self.terms: list[tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, torch.Tensor]]] = []
        self.learned = 0
        self._anchor_rows: dict[str, torch.Tensor] = {}
        self._layers: dict[str, Layer] | None = None
        self._layers_of: int | None = None

    def _covered(self, adapter: Adapter) -> dict[str, Layer]:
        if self._layers is None or self._layers_of != id(adapter.model):
            self._layers, self._layers_of = linear_layers(adapter), id(adapter.model)
        return self._layers

    def after_task(self, adapter: Adapter, examples: list[Any]) -> None:
        cfg = self.config
        seed = cfg.seed + self.learned
        factors, _ = kronecker_factors(adapter, examples, cfg.fisher, limit=cfg.fisher_samples,
                                       batch_size=cfg.batch_size, seed=seed)
        layers = linear_layers(adapter)
        covered = {name for layer in layers.values() for name in (layer.weight, layer.bias) if name}
        rest = [name for name in adapter.trainable_parameters() if name not in covered]
        diagonal = {}
        if rest and cfg.rest == "diag" and examples:
            diagonal = diagonal_fisher(_Subset(adapter, rest), examples, cfg.fisher,
                                       limit=min(cfg.fisher_samples, cfg.rest_samples), chunk=cfg.batch_size,
                                       seed=seed)
        self.anchor = snapshot(adapter)
        self._anchor_rows = {}
        self.terms.append((factors, diagonal))
        self.learned += 1

    def _anchored(self, layer: Layer, like: torch.Tensor) -> torch.Tensor:
        """The anchor of ``layer`` stacked as :func:`_stacked` does, on ``like``'s device and dtype (cached)."""
        cached = self._anchor_rows.get(layer.weight)
        if cached is None or cached.device != like.device or cached.dtype != like.dtype:
            cached = _stacked(layer, {name: v.to(like.device, like.dtype) for name, v in self.anchor.items()
                                      if name in (layer.weight, layer.bias)})
            self._anchor_rows[layer.weight] = cached
        return cached

    def penalty(self, adapter: Adapter) -> torch.Tensor | None:
        if self.anchor is None or self.config.lam == 0 or not self.terms:
            return None
        params = adapter.trainable_parameters()
        layers = self._covered(adapter)
        count = len(self.terms)
        weights = [self.config.gamma ** (count - 1 - t) for t in range(count)]
        parts = []
        for key in dict.fromkeys(key for factors, _ in self.terms for key in factors):
            layer = layers[key]
            current = _stacked(layer, params)
            diff = current - self._anchored(layer, current)
            for weight, (factors, _) in zip(weights, self.terms):
                if key in factors:
                    a, g = factors[key]
                    parts.append(weight * kronecker_penalty(diff, a.to(diff.device, diff.dtype),
                                                            g.to(diff.device, diff.dtype)))
        for weight, (_, diagonal) in zip(weights, self.terms):
            for name, fisher in diagonal.items():
                p = params[name]
                parts.append(weight * (fisher.to(p.device, p.dtype)
                                       * (p - self.anchor[name].to(p.device, p.dtype)) ** 2).sum())
        if not parts:
            return None
        return (self.config.lam / 2) * torch.stack(parts).sum()

    def memory_bytes(self) -> int:
        held = tensor_bytes(self.anchor) if self.anchor else 0
        for factors, diagonal in self.terms:
            held += tensor_bytes([t for pair in factors.values() for t in pair]) + tensor_bytes(diagonal)
        return held

    def held(self) -> str:
        if not self.terms:
            return ""
        tasks = len(self.terms)
        return f"{len(self.terms[-1][0])} layers' Kronecker factors x {tasks} task{'s' if tasks != 1 else ''}"

    # -- state kept between runs ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        tensors = {f"anchor.{name}": v.detach().contiguous() for name, v in (self.anchor or {}).items()}
        for t, (factors, diagonal) in enumerate(self.terms):
            for key, (a, g) in factors.items():
                tensors[f"{t}.A.{key}"] = a.contiguous()
                tensors[f"{t}.G.{key}"] = g.contiguous()
            for name, fisher in diagonal.items():
                tensors[f"{t}.diag.{name}"] = fisher.contiguous()
        return tensors

    def extra_state(self) -> dict[str, Any]:
        return {"method": self.name, "tasks": len(self.terms), "learned": self.learned}

    def load_state(self, tensors: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        if extra.get("method") != self.name:
            raise ValueError(f"state of {extra.get('method')!r} given to {self.name}")
        anchor = {key[len("anchor."):]: v.clone() for key, v in tensors.items() if key.startswith("anchor.")}
        terms = []
        for t in range(int(extra["tasks"])):
            prefix = f"{t}."
            factors = {key[len(prefix) + 2:]: (v.clone(), tensors[f"{t}.G.{key[len(prefix) + 2:]}"].clone())
                       for key, v in tensors.items() if key.startswith(f"{t}.A.")}
            diagonal = {key[len(prefix) + 5:]: v.clone() for key, v in tensors.items() if key.startswith(f"{t}.diag.")}
            terms.append((factors, diagonal))
        self.anchor = anchor or None
        self._anchor_rows = {}
        self.terms = terms
        self.learned = int(extra["learned"])

