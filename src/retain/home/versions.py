"""A home's versions as models: where storage (:mod:`retain.ledger`) meets the models (:mod:`retain.models`).

The ledger stores a LoRA version as its adapter and never loads a model; :func:`materialize` hands it the merge
(:func:`retain.models.merge.merge_adapter`). :func:`diff` is ``retain diff``: the ledger's score and weight
comparisons and the output drift that runs both models (:mod:`retain.evaluate.drift`). :func:`champion_loader`
is how the guard gets a home's champion (``retain guard scan --model HOME``): the guard is handed a model and
never opens a home.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retain.data.skills import Skill
from retain.evaluate.drift import output_drift
from retain.ledger.core import Home, is_home
from retain.ledger.diff import parameter_distance, score_changes
from retain.ledger.store import known_scores
from retain.models.merge import merge_adapter


def materialize(home: Home, ref: str, out: Path) -> Path:
    """Version ``ref``'s full model as a save_pretrained folder ``out`` (a LoRA version merged onto its parent)."""
    return home.materialize(ref, out, merge_adapter)


def diff(home: Home, ref_a: str, ref_b: str, work: Path, drift: bool = True) -> dict[str, Any]:
    """Everything ``retain diff`` reports, for versions ``a`` and ``b`` materialised under ``work``: score
    changes, parameter distance and (with ``drift``) output drift over the home's suite."""
    a, b = home.resolve(ref_a), home.resolve(ref_b)
    folder_a, folder_b = materialize(home, a, work / a), materialize(home, b, work / b)
    return {"a": a, "b": b, "scores": score_changes(known_scores(home.conn, a), known_scores(home.conn, b)),
            "parameters": parameter_distance(folder_a, folder_b),
            "drift": output_drift(folder_a, folder_b, home.suite()) if drift else None}


def champion_loader(root: str | Path) -> tuple[Callable[[], Any], list[Skill]]:
    """A home's champion for the guard's screen: a function that loads it (materialised in a temporary folder,
    called once the data file has been checked) and the suite items it screens against (those without a
    demonstration)."""
    from retain.models.loading import load_adapter

    home = Home.open(root)
    suite = [s for s in home.suite() if not s.with_demonstration]

    def load() -> Any:
        with tempfile.TemporaryDirectory(prefix="retain-scan-") as work:
            return load_adapter(materialize(home, "champion", Path(work) / "champion"))
    return load, suite
