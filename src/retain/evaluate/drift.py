"""Output drift between two models: per-prompt sequence-level KL(a || b) over a regression suite's held-out
prompts, the same measure as the demo's drift from the base (:func:`retain.evaluate.evaluation.kl_per_prompt`).
The maximum matters more than the mean (one implanted behaviour hides in a mean). ``retain diff`` reports it
(:func:`retain.home.versions.diff`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from retain.data.skills import Skill
from retain.evaluate.evaluation import kl_per_prompt
from retain.models.loading import load_adapter
from retain.models.merge import quiet_hf

DRIFT_PROMPTS_PER_SKILL = 16
DRIFT_BATCH = 16


def output_drift(folder_a: Path, folder_b: Path, suite: list[Skill]) -> dict[str, Any]:
    """Per-prompt KL(a || b) over the first :data:`DRIFT_PROMPTS_PER_SKILL` held-out prompts of each suite
    item (``a`` sampling the answers, seeded), with the prompt where the two differ most."""
    examples = [e for skill in suite for e in skill.test[:DRIFT_PROMPTS_PER_SKILL]]
    shown = [skill.with_demonstration for skill in suite for _ in skill.test[:DRIFT_PROMPTS_PER_SKILL]]
    if not examples:
        return {"prompts": 0, "mean_kl": None, "max_kl": None, "max_prompt": None}
    with quiet_hf():
        model_a, model_b = load_adapter(str(folder_a)), load_adapter(str(folder_b))
    torch.manual_seed(0)
    per_prompt = kl_per_prompt(model_a, model_b, examples, shown=shown, batch_size=DRIFT_BATCH)
    worst = max(range(len(per_prompt)), key=per_prompt.__getitem__)
    return {"prompts": len(per_prompt), "mean_kl": sum(per_prompt) / len(per_prompt), "max_kl": per_prompt[worst],
            "max_prompt": examples[worst].prompt}
