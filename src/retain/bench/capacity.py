"""``retain bench capacity``: prior-skill retention and new-skill accuracy against model size (issue 8).

Reads the ``retention.json`` files that ``retain bench retention --model ...`` wrote for models of the embedded
family (same tokenizer and skill library, sizes from ``retain build-base --size S|M|L``), groups them by model and
recipe, and draws both metrics against the parameter count, one line per recipe: the SDFT paper's comparison across
scale (Shenfeld et al. 2026; docs/references.md) for our stream, and the question Ramasesh et al. (2022) and Mirzadeh et al. (2022)
answered for vision: do wider networks forget less? Each point keeps its seeds' mean and spread; a point with
one seed says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retain.bench.consolidation import json_safe
from retain.errors import RetainError

METRICS = ("prior_retention", "new_skill_accuracy")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RetainError("no such file (a retention.json written by `retain bench retention`)", file=str(path))
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RetainError(f"is not JSON ({error})", file=str(path)) from None
    if not isinstance(doc, dict) or doc.get("benchmark") != "retention":
        raise RetainError("is not a result of `retain bench retention`", file=str(path), field="benchmark")
    if doc.get("quick"):
        raise RetainError("is a --quick run; sizes are compared at the full budget", file=str(path), field="quick")
    return doc


def combine(paths: list[Path]) -> dict[str, Any]:
    """One document: for each model (by parameter count) and recipe, the summary of its runs. Results of the
    embedded model written before the benchmark recorded its model count as the embedded model's."""
    from retain.bench.retention import check_model, parameters
    from retain.models.tiny.build import EMBEDDED_FINETUNE_LR

    models: dict[int, dict[str, Any]] = {}
    for path in paths:
        doc = _read(path)
        model = doc.get("model") or {"path": "embedded", "parameters": parameters(check_model("embedded")),
                                     "build_config": None}
        lr = doc.get("budget", {}).get("lr", EMBEDDED_FINETUNE_LR)  # results written before --lr used it
        entry = models.setdefault(model["parameters"], {**model, "lr": lr, "recipes": {}, "sources": []})
        if entry["lr"] != lr:
            raise RetainError(f"was run at learning rate {lr}, another result of this model at {entry['lr']}: "
                              "compare sizes at one recipe", file=str(path), field="budget.lr")
        entry["sources"].append(str(path))
        for label, summary in doc["summary"].items():
            if label in entry["recipes"]:
                raise RetainError(f"recipe {label!r} of this model is also in {entry['recipes'][label]['source']}",
                                  file=str(path), field="summary")
            entry["recipes"][label] = {"source": str(path), "seeds": len(doc["seeds"]),
                                       **{key: summary[key] for key in METRICS}}
    if not models:
        raise RetainError("needs at least one retention.json", field="RESULTS")
    return {"benchmark": "capacity", "models": [models[n] for n in sorted(models)]}


def write_results(doc: dict[str, Any], out: Path) -> list[Path]:
    """``capacity.json`` and ``capacity.png`` (two panels against parameters, log scale; the 90% target drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    path = out / "capacity.json"
    path.write_text(json.dumps(json_safe(doc), indent=2, allow_nan=False) + "\n")
    labels = sorted({label for m in doc["models"] for label in m["recipes"]})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True)
    for ax, key, title in zip(axes, METRICS, ("prior-skill retention after the stream",
                                              "new-skill accuracy (held out)")):
        for label in labels:
            points = [(m["parameters"], m["recipes"][label]) for m in doc["models"] if label in m["recipes"]]
            xs = [p for p, _ in points]
            ax.errorbar(xs, [r[key]["mean"] for _, r in points], yerr=[r[key]["std"] for _, r in points],
                        marker="o", capsize=3, label=label)
            for x, r in points:
                if r["seeds"] == 1:
                    ax.annotate("1 seed", (x, r[key]["mean"]), textcoords="offset points", xytext=(4, -10),
                                fontsize=7, color="grey")
        if key == "prior_retention":
            ax.axhline(0.9, linestyle="--", color="grey", linewidth=1)
        ax.set_xscale("log")
        sizes = [m["parameters"] for m in doc["models"]]
        ax.set_xlim(min(sizes) / 2, max(sizes) * 2)
        ax.set_xticks(sizes, [f"{n / 1e6:.2f}M" for n in sizes])
        ax.minorticks_off()
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("parameters")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle("Demo stream through a home, by model size (mean ± sd over seeds)")
    fig.tight_layout()
    png = out / "capacity.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return [path, png]
