"""What ``retain diff`` reads from storage: how two versions differ in scores and in weights.

- scores: every skill and probe either version was measured on (its own record, plus the champion scores a
  gate measured when the version was the champion being compared);
- parameter distance: L2 norm of the weight difference, overall and per tensor (tensors whose content hash is
  equal are skipped without reading them).

What they say (output drift) runs both models: :mod:`retain.evaluate.drift`; :func:`retain.home.versions.diff`
puts the three together.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from retain.ledger.tensors import hash_only, snapshot


def score_changes(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """One row per probe and skill: both scores, the change and the relative change (None where unknown)."""
    rows = []
    for kind, suite in (("probe", "probes"), ("skill", "skills")):
        for name in sorted(set(a[suite]) | set(b[suite])):
            sa, sb = a[suite].get(name), b[suite].get(name)
            change = None if sa is None or sb is None else sb - sa
            relative = None if change is None or sa == 0 else change / sa
            rows.append({"kind": kind, "name": name, "a": sa, "b": sb, "change": change, "relative": relative})
    return rows


def _tensors(folder: Path) -> dict[str, tuple[Path, str]]:
    manifest = snapshot(folder, hash_only)
    return {name: (folder / rel, sha) for rel, shard in manifest["safetensors"].items()
            for name, sha in shard["tensors"]}


def _load(path: Path, name: str) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as handle:
        return handle.get_tensor(name).to(torch.float64)


def parameter_distance(folder_a: Path, folder_b: Path, top: int = 5) -> dict[str, Any]:
    """L2 distance between two full models' weights, overall, relative to ``a`` and per tensor."""
    ta, tb = _tensors(folder_a), _tensors(folder_b)
    squared, norm_a, changed = 0.0, 0.0, []
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            changed.append({"tensor": name, "l2": math.nan, "relative": math.nan, "note": "only in one version"})
            continue
        a = _load(ta[name][0], name)
        norm_a += float(a.pow(2).sum())
        if ta[name][1] == tb[name][1]:
            continue
        b = _load(tb[name][0], name)
        if a.shape != b.shape:
            changed.append({"tensor": name, "l2": math.nan, "relative": math.nan, "note": "shape changed"})
            continue
        d = float((b - a).pow(2).sum())
        squared += d
        changed.append({"tensor": name, "l2": math.sqrt(d), "relative": math.sqrt(d) / max(a.norm().item(), 1e-30)})
    changed.sort(key=lambda r: -r["l2"] if not math.isnan(r["l2"]) else -math.inf)
    return {"l2": math.sqrt(squared), "relative": math.sqrt(squared) / max(math.sqrt(norm_a), 1e-30),
            "tensors": len(set(ta) | set(tb)), "changed": len(changed), "top": changed[:top]}
