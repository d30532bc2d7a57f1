"""A stream of skills learned into a home, one ``retain learn HOME FILE`` after another, read back from its
ledger as the continual-learning matrices: what ``retain demo`` shows of a home and ``retain bench retention``
measures.

- R: the new skills' held-out scores after each learn (row 0: the home's v1); a skill is counted from the learn
  that brought it on (before that it is not in the suite, and counts as 0, what the base scores without a
  demonstration on skills it does not know);
- P: the suite's probes (the prior skills) at the same points.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from retain.evaluate import metrics


def learn_stream(root: Path, files: list[Path], *, seed: int, force: str, quiet: bool = True,
                 given: dict[str, Any] | None = None, **budget: Any) -> dict[str, Any]:
    """Learn ``files`` into the home ``root`` in order (each promoted with ``force`` whatever the gate says, so
    the stream goes on; the gate's own decision is kept), with ``given`` (method, options, scorer, lr; none:
    the home's own) and ``budget`` (epochs, batch_size, test_fraction). Returns the matrices, the gate's
    decisions (with the reasons of any it refused), the rates the home recorded and the wall-clock and CPU
    seconds of the learns."""
    from retain.home.workflows import learn_in_home
    from retain.ledger.core import Home

    start, cpu = time.perf_counter(), time.process_time()
    decisions, reasons, names = [], [], []
    for path in files:
        outcome = learn_in_home(root, path, seed=seed, force=force, quiet=quiet, **(given or {}), **budget)
        decisions.append(outcome.decision.decision)
        reasons.append(outcome.decision.reasons)
        names.append(Home.open(root).version(outcome.version)["record"]["skill"])
    # wall-clock, and this process's CPU time: on a shared machine the CPU time is what the learns cost
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    home = Home.open(root)
    versions = [home.version(f"v{i}")["record"] for i in range(1, len(files) + 2)]
    R = [[v["scores"]["skills"][n] if j < i else 0.0 for j, n in enumerate(names)] for i, v in enumerate(versions)]
    probes = sorted(versions[0]["scores"]["probes"])
    P = [[v["scores"]["probes"][p] for p in probes] for v in versions]
    summary = {**metrics.summarize(R),
               "new_skill_accuracy": statistics.fmean(R[i + 1][i] for i in range(len(names))),
               "prior_retention": metrics.prior_retention(P[0], P[-1]), "seconds": seconds,
               "cpu_seconds": cpu_seconds, "gate_passed": sum(d == "accepted" for d in decisions)}
    return {"skills": names, "probes": probes, "R": R, "probe_R": P, "decisions": decisions,
            "gate_reasons": reasons, "summary": summary,
            "lr": sorted({v["config"]["recipe"]["train"]["lr"] for v in versions[1:]}),
            "methods": [v["method"] for v in versions[1:]],
            "protected": versions[0]["config"]["protection"]["notes"]}
