"""retain: one model that keeps learning new skills without forgetting the old ones.

The public API (loaded lazily, so ``retain --help`` stays fast)::

    import retain
    from retain.run import run
    stream, probes = retain.new_skills(), retain.probe_skills()
    recipe = retain.Recipe.for_model("embedded", "sdft+ewc")
    result = run(retain.skills_scenario("my-stream", stream, probes), recipe)
    result.matrix, result.summary                      # R[i][j] and ACC/BWT/forgetting/retention
    retain.learn("embedded", "skill.jsonl", "sdft+ewc", out="out/")
    retain.evaluate("out/", "skill.jsonl", scorer="alnum")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "learn": "retain.api", "learn_skill": "retain.api", "evaluate": "retain.api", "load_model": "retain.api",
    "LearnResult": "retain.api",
    "RunResult": "retain.run",
    "Recipe": "retain.recipe", "ModelSpec": "retain.recipe",
    "Scenario": "retain.scenario", "Task": "retain.scenario",
    "skills_scenario": "retain.domains.language",
    "TrainConfig": "retain.train.loop", "train_task": "retain.train.loop",
    "Example": "retain.data.skills", "Skill": "retain.data.skills",
    "read_skill": "retain.data.jsonl", "new_skills": "retain.data.synthetic", "probe_skills": "retain.data.synthetic",
    "summarize": "retain.evaluate.metrics", "parse_method": "retain.methods.registry",
    "RetainError": "retain.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'retain' has no attribute {name!r}")
