"""The regression suite kept in a home: the user's suite (or the embedded probes) pinned at ``init``, items
added or removed later (``retain suite``), and every learned skill's held-out set.

Held-out sets are stored as canonical JSONL blobs, so every later candidate is judged on exactly the examples
earlier versions were, even when the data files or the built-in probes change. An entry's training split,
when it has one, is stored beside it: protection (importance, rehearsal) draws on it, never on the held-out set.
An lm-evaluation-harness task (:class:`LmEvalTask`) is stored as the files it was given: its YAML and every file
the YAML reads, one blob each, so it runs again from the home alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from retain.data.skills import Example, Skill
from retain.ledger.objects import ObjectStore


@dataclass
class LmEvalTask(Skill):
    """A suite item scored by lm-evaluation-harness (:mod:`retain.home.lmeval`): the task YAML ``entry`` among
    ``files`` (path relative to the files' common folder -> content), ``data_files`` (each data file as the YAML
    names it -> its path in ``files``), the ``metric`` that is its score, an optional ``limit`` on documents,
    and ``n`` the documents scored. It has no training split, so protection has nothing of it to draw on."""

    entry: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    data_files: dict[str, str] = field(default_factory=dict)
    metric: str = ""
    limit: int | None = None
    n: int = 0


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
    """Keep a skill's held-out examples (and training split, if any) and return the suite entry naming them.
    An lm-eval task keeps its files; its ``examples_sha256`` is its YAML's blob (what defines its documents)."""
    if isinstance(skill, LmEvalTask):
        files = {path: objects.put(data) for path, data in sorted(skill.files.items())}
        return {"name": skill.name, "kind": kind, "scorer": skill.scorer, "with_demonstration": False,
                "examples_sha256": files[skill.entry], "n": skill.n,
                "lmeval": {"entry": skill.entry, "files": files, "data_files": skill.data_files,
                           "metric": skill.metric, "limit": skill.limit}}
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
    if "lmeval" in spec:
        task = spec["lmeval"]
        return LmEvalTask(name=spec["name"], scorer=spec["scorer"], entry=task["entry"],
                          files={path: objects.get(sha) for path, sha in task["files"].items()},
                          data_files=task["data_files"], metric=task["metric"], limit=task["limit"], n=spec["n"])
    train = _examples(objects, spec["train_sha256"]) if "train_sha256" in spec else []
    return Skill(name=spec["name"], train=train, test=_examples(objects, spec["examples_sha256"]),
                 scorer=spec["scorer"], with_demonstration=spec["with_demonstration"])


def blobs(spec: dict[str, Any]) -> dict[str, str]:
    """The blobs a suite entry uses, with what each is."""
    if "lmeval" in spec:
        return {sha: f"file {path} of lm-eval task {spec['name']}" for path, sha in spec["lmeval"]["files"].items()}
    refs = {spec["examples_sha256"]: f"held-out set of {spec['kind']} {spec['name']}"}
    if "train_sha256" in spec:
        # One blob can be both (a tiny skill whose every example is held out): name it by its held-out role.
        refs.setdefault(spec["train_sha256"], f"training split of {spec['kind']} {spec['name']}")
    return refs
