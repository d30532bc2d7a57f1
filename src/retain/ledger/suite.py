"""The regression suite kept in a home: the probe set pinned at ``init`` and every learned skill's held-out set.

Held-out sets are stored as canonical JSONL blobs, so every later candidate is judged on exactly the examples
earlier versions were, even when the data files or the built-in probes change.
"""

from __future__ import annotations

import json
from typing import Any

from retain.data.skills import Example, Skill
from retain.ledger.objects import ObjectStore


def examples_jsonl(examples: list[Example]) -> bytes:
    """One canonical line per example (sorted keys, ``answer`` only when present)."""
    lines = []
    for e in examples:
        record = {"prompt": e.prompt, "demonstration": e.demonstration}
        if e.answer is not None:
            record["answer"] = e.answer
        lines.append(json.dumps(record, sort_keys=True, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


def store(objects: ObjectStore, skill: Skill, kind: str) -> dict[str, Any]:
    """Keep a skill's held-out examples and return the suite entry that names them."""
    sha = objects.put(examples_jsonl(skill.test))
    return {"name": skill.name, "kind": kind, "scorer": skill.scorer, "with_demonstration": skill.with_demonstration,
            "examples_sha256": sha, "n": len(skill.test)}


def load(objects: ObjectStore, spec: dict[str, Any]) -> Skill:
    """The suite entry as a skill with only held-out examples (the blob's hash is checked on read)."""
    text = objects.get(spec["examples_sha256"]).decode("utf-8")
    test = [Example(prompt=r["prompt"], demonstration=r["demonstration"], answer=r.get("answer"))
            for r in map(json.loads, text.splitlines()) if r]
    return Skill(name=spec["name"], test=test, scorer=spec["scorer"], with_demonstration=spec["with_demonstration"])
