"""The regression suite kept in a home: the user's suite (or the embedded probes) pinned at ``init``, items
added or removed later (``retain suite``), and every learned skill's held-out set.

Held-out sets are stored as canonical JSONL blobs, so every later candidate is judged on exactly the examples
earlier versions were, even when the data files or the built-in probes change. An entry's training split,
when it has one, is stored beside it: protection (importance, rehearsal) draws on it, never on the held-out set.
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
    """Keep a skill's held-out examples (and training split, if any) and return the suite entry naming them."""
    spec = {"name": skill.name, "kind": kind, "scorer": skill.scorer, "with_demonstration": skill.with_demonstration,
            "examples_sha256": objects.put(examples_jsonl(skill.test)), "n": len(skill.test)}
    if skill.train:
        spec.update(train_sha256=objects.put(examples_jsonl(skill.train)), n_train=len(skill.train))
    return spec


def _examples(objects: ObjectStore, sha: str) -> list[Example]:
    text = objects.get(sha).decode("utf-8")
    return [Example(prompt=r["prompt"], demonstration=r["demonstration"], answer=r.get("answer"))
            for r in map(json.loads, text.splitlines()) if r]


def load(objects: ObjectStore, spec: dict[str, Any]) -> Skill:
    """The suite entry as a skill: held-out examples, and its training split when stored (hashes checked)."""
    train = _examples(objects, spec["train_sha256"]) if "train_sha256" in spec else []
    return Skill(name=spec["name"], train=train, test=_examples(objects, spec["examples_sha256"]),
                 scorer=spec["scorer"], with_demonstration=spec["with_demonstration"])


def blobs(spec: dict[str, Any]) -> dict[str, str]:
    """The blobs a suite entry uses, with what each is."""
    refs = {spec["examples_sha256"]: f"held-out set of {spec['kind']} {spec['name']}"}
    if "train_sha256" in spec:
        # One blob can be both (a tiny skill whose every example is held out): name it by its held-out role.
        refs.setdefault(spec["train_sha256"], f"training split of {spec['kind']} {spec['name']}")
    return refs
