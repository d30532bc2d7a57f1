"""A regression suite the user owns: skill files (the JSONL of ``retain learn``) with optional per-file settings.

``retain init HOME --suite PATH ...`` and ``retain suite add HOME PATH ...`` take, for each PATH:

- a ``.jsonl`` file: one suite item named after the file, default settings;
- a folder: every ``*.jsonl`` in it, with settings per file from an optional ``suite.json`` beside them;
- a ``.json`` manifest: ``{"items": [{"file": "a.jsonl", "name": ..., "scorer": ..., ...}, ...]}``, files
  relative to the manifest;
- a ``.yaml`` / ``.yml`` file: an lm-evaluation-harness task on local data files (the extra ``retain[lmeval]``,
  :mod:`retain.home.lmeval`), named after its ``task``; in a manifest its settings are ``name``, ``metric``
  and ``limit``.

Settings of one item: ``name`` (display name, default the file's stem), ``scorer`` (``exact``, ``alnum`` or
``module:function``), ``with_demonstration`` (the prompt carries the demonstration: a probe of demonstration
use), ``test_fraction`` (the seeded share of prompts held out for the gate; the rest is the training split
that protection may rehearse, default 0.5). A line needs a ``prompt`` and a reference (``answer`` or
``demonstration``). Every problem is a :class:`RetainError` naming the file, line and field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retain.data.jsonl import read_examples
from retain.data.skills import Skill, split_held_out
from retain.errors import RetainError
from retain.evaluate.scorers import get_scorer
from retain.home import lmeval

SETTINGS = {"file", "name", "scorer", "with_demonstration", "test_fraction"}
FOLDER_SETTINGS = "suite.json"
DEFAULT_TEST_FRACTION = 0.5


def _item(file: Path, settings: dict[str, Any], where: str, seed: int) -> Skill:
    if lmeval.is_task_file(file):
        return lmeval.read_task(file, settings, where)
    for key in settings:
        if key not in SETTINGS:
            raise RetainError(f"unknown setting (known: {', '.join(sorted(SETTINGS - {'file'}))})", file=where,
                              field=key)
    name = settings.get("name", file.stem)
    scorer = settings.get("scorer", "exact")
    shown = settings.get("with_demonstration", False)
    fraction = settings.get("test_fraction", DEFAULT_TEST_FRACTION)
    if not isinstance(name, str) or not name.strip():
        raise RetainError("must be a non-empty string", file=where, field="name")
    if not isinstance(scorer, str):
        raise RetainError("must be a string", file=where, field="scorer")
    if not isinstance(shown, bool):
        raise RetainError("must be true or false", file=where, field="with_demonstration")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise RetainError(f"must be a number in (0, 1], got {fraction!r}", file=where, field="test_fraction")
    get_scorer(scorer)
    examples = read_examples(file, require_demonstration=shown)
    train, test = split_held_out(examples, float(fraction), seed)
    if not test:
        train, test = [], examples
    return Skill(name=name.strip(), train=train, test=test, scorer=scorer, with_demonstration=shown)


def _settings_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise RetainError("no such file", file=str(path)) from None
    except json.JSONDecodeError as err:
        raise RetainError(f"malformed JSON ({err.msg})", file=str(path), line=err.lineno) from None


def read_suite(paths: list[str | Path], seed: int = 0) -> list[Skill]:
    """Every suite item the paths name, split into training and held-out prompts (seeded)."""
    items: list[Skill] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            settings = _settings_file(path / FOLDER_SETTINGS) if (path / FOLDER_SETTINGS).exists() else {}
            if not isinstance(settings, dict):
                raise RetainError("must be an object of file name -> settings", file=str(path / FOLDER_SETTINGS))
            files = sorted(path.glob("*.jsonl"))
            if not files:
                raise RetainError("holds no *.jsonl suite files", file=str(path))
            for name in settings:
                if not (path / name).is_file():
                    raise RetainError("names a file that is not in the folder", file=str(path / FOLDER_SETTINGS),
                                      field=name)
            for file in files:
                own = settings.get(file.name, {})
                if not isinstance(own, dict):
                    raise RetainError("must be an object", file=str(path / FOLDER_SETTINGS), field=file.name)
                items.append(_item(file, own, str(path / FOLDER_SETTINGS), seed))
        elif path.suffix == ".json":
            manifest = _settings_file(path)
            entries = manifest.get("items") if isinstance(manifest, dict) else None
            if not isinstance(entries, list) or not entries:
                raise RetainError("must be an object with a non-empty list \"items\"", file=str(path), field="items")
            for index, entry in enumerate(entries):
                if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                    raise RetainError("needs a \"file\"", file=str(path), field=f"items[{index}].file")
                items.append(_item(path.parent / entry["file"], entry, f"{path} items[{index}]", seed))
        elif path.exists() and not path.is_file():
            raise RetainError("not a file or folder", file=str(path))
        else:
            items.append(_item(path, {}, str(path), seed))
    seen: dict[str, int] = {}
    for item in items:
        seen[item.name] = seen.get(item.name, 0) + 1
    clashes = sorted(name for name, count in seen.items() if count > 1)
    if clashes:
        raise RetainError(f"two suite items are named {clashes[0]!r}; give one a \"name\" in its settings",
                          field="suite")
    return items
