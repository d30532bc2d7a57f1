"""``retain export``: a version as a plain ``save_pretrained`` folder with a model card and its full record.

The card follows Mitchell et al. (2019) (details, intended use, factors, metrics, evaluation data, training
data, quantitative analyses, ethical considerations, caveats) and adds what a governed model needs: the
lineage back to the base model, the SHA-256 of every data file, and the gate's decision.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.atomic import fsync_dir, write_atomic
from retain.ledger.core import Home, Merge
from retain.ledger.hashing import canonical_json
from retain.ledger.tensors import hash_only, snapshot, weights_sha256


def lineage(home: Home, name: str) -> list[dict[str, Any]]:
    """The version's ancestors from the base model down to itself."""
    chain = []
    current: str | None = name
    while current:
        row = home.version(current)
        chain.append(row)
        current = row["parent"]
    return chain[::-1]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def card(home: Home, name: str) -> str:
    """The model card (Markdown) of one version."""
    row = home.version(name)
    record = row["record"]
    chain = lineage(home, name)
    gates = store.gates_of(home.conn, name)
    specs = store.suite_specs(home.conn)
    scores = store.known_scores(home.conn, name)
    env = record["environment"]
    lines = ["---", "library_name: transformers", "tags: [retain, continual-learning]", "---", "",
             f"# {home.root.name} {name}", "",
             "## Model details", "",
             f"- version: {name} (status: {row['status']}); parent: {record['parent'] or 'none (base model)'}",
             f"- method: {record['method']}{' with LoRA' if record['lora'] else ''}; seed: {record['seed']}; "
             f"skill learned: {record['skill'] or 'none'}",
             "- lineage: " + " -> ".join(f"{r['name']} ({r['method']})" for r in chain),
             f"- weights SHA-256 (per-tensor content, as recorded): `{record['artifacts']['weights_sha256']}`",
             f"- created {record['created_at']} with " + ", ".join(f"{k} {v}" for k, v in env["packages"].items())
             + (f", git {env['git']['commit'][:12]}{' (dirty)' if env['git']['dirty'] else ''}" if env["git"] else ""),
             "", "## Intended use", "",
             "A continually trained model: the base model plus the skills listed under training data, learned in "
             "that order. Use it for those skills and for what the probes measure; check the scores below first.",
             "", "## Factors", "",
             "Performance is reported per skill and per probe (prior capabilities that were never trained on) "
             "so that forgetting shows up next to learning.",
             "", "## Metrics", ""]
    lines += [f"- {s['kind']} `{s['name']}`: scorer `{s['scorer']}`" for s in specs]
    lines += ["", "## Evaluation data", "",
              "The home's regression suite: held-out examples stored in the home and reused for every later version."]
    lines += [f"- {s['kind']} `{s['name']}`: {s['n']} examples, SHA-256 `{s['examples_sha256']}`" for s in specs]
    lines += ["", "## Training data", ""]
    for r in chain:
        for d in r["record"]["data"]:
            lines.append(f"- {r['name']}: {d['role']} `{d['name']}` ({d['bytes']} bytes), SHA-256 `{d['sha256']}`")
    if not any(r["record"]["data"] for r in chain):
        lines.append("- none: this is the base model")
    lines += ["", "## Quantitative analyses", "", "| kind | name | score |", "|---|---|---|"]
    lines += [f"| {kind} | {n} | {_fmt(v)} |" for kind, suite in (("probe", "probes"), ("skill", "skills"))
              for n, v in sorted(scores[suite].items())]
    lines += ["", "## Promotion gate", ""]
    for g in gates:
        lines.append(f"- against champion {g['champion']}: **{g['decision']}**"
                     + (f" (forced: {g['forced_reason']})" if g["forced_reason"] else ""))
        lines += [f"  - {reason}" for reason in g["reasons"]]
    if not gates:
        lines.append("- not gated (the base model)")
    lines += ["", "## Ethical considerations", "",
              "Fine-tuning data can implant behaviour: about 100 poisoned examples can plant a trigger and 10 can "
              "undo safety tuning. Every data file above is pinned by its SHA-256; review them before deploying.",
              "", "## Caveats and recommendations", "",
              "Scores come from the held-out sets above, which are small and synthetic for the embedded model. "
              "Probes measure only the capabilities they cover; forgetting elsewhere is possible. Earlier versions "
              "stay in the home and `retain rollback` returns to any earlier champion.", ""]
    return "\n".join(lines)


def export(home: Home, ref: str, out: str | Path, timeout: float = 0.0, *, merge: Merge) -> dict[str, Any]:
    """Write version ``ref`` to ``out`` (new or empty folder) in one rename and record the export.

    The home's lock is held throughout so the recorded export and the folder always agree. A LoRA version is
    ``merge``d onto its parent (:meth:`retain.ledger.core.Home.materialize`). A read-only home
    is exported all the same, without the record (``recorded`` is then False).
    """
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RetainError("exists and is not an empty folder", file=str(out))
    if not out.parent.is_dir():
        raise RetainError("parent folder does not exist", file=str(out.parent))
    with home.writing("export", timeout) if not home.readonly else nullcontext():
        name = home.resolve(ref)
        row = home.version(name)
        building = out.parent / f".{out.name}.export-{uuid.uuid4().hex[:8]}"
        try:
            home.materialize(name, building, merge)
            weights = weights_sha256(snapshot(building, hash_only))
            write_atomic(building / "README.md", card(home, name).encode("utf-8"))
            write_atomic(building / "retain-version.json", canonical_json(
                {"version": name, "status": row["status"], "record": row["record"],
                 "gates": store.gates_of(home.conn, name), "lineage": [r["name"] for r in lineage(home, name)],
                 "weights_sha256": weights}) + b"\n")
            os.rename(building, out)
            fsync_dir(out.parent)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        if not home.readonly:
            home.commit([{"type": "exported", "version": name, "out": str(out), "weights_sha256": weights}])
    return {"version": name, "out": str(out), "weights_sha256": weights, "recorded": not home.readonly}
