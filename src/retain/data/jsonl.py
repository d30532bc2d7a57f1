"""Reading skill files: one JSON object per line with ``prompt``, ``demonstration`` and optional ``answer``.

Every problem is reported with the file, the 1-based line and the field, before anything is trained or written.
"""

from __future__ import annotations

import json
from pathlib import Path

from retain.data.skills import Example, Skill, split_held_out
from retain.errors import RetainError

REQUIRED = ("prompt", "demonstration")
KNOWN = ("prompt", "demonstration", "answer")


def read_examples(path: str | Path, *, require_demonstration: bool = True,
                  require_reference: bool = True) -> list[Example]:
    """Parse a JSONL skill file into examples; raise :class:`RetainError` naming file, line and field.

    ``require_reference=False`` accepts prompts alone (prior-competence data the model answers itself)."""
    path = Path(path)
    if not path.exists():
        raise RetainError("no such file", file=str(path))
    if not path.is_file():
        raise RetainError("not a file", file=str(path))
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a byte-order mark, which is not JSON.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise RetainError(f"not UTF-8 text ({err.reason})", file=str(path)) from None
    examples = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise RetainError(f"malformed JSON ({err.msg} at column {err.colno})", file=str(path),
                              line=number) from None
        if not isinstance(record, dict):
            raise RetainError("expected a JSON object", file=str(path), line=number)
        required = REQUIRED if require_demonstration else ("prompt",)
        for name in required:
            if name not in record:
                raise RetainError("missing field", file=str(path), line=number, field=name)
        for name in KNOWN:
            if name in record and not isinstance(record[name], str):
                raise RetainError(f"must be a string, got {type(record[name]).__name__}", file=str(path),
                                  line=number, field=name)
        if not record["prompt"].strip():
            raise RetainError("must not be empty", file=str(path), line=number, field="prompt")
        if require_demonstration and not record["demonstration"].strip():
            raise RetainError("must not be empty", file=str(path), line=number, field="demonstration")
        if require_reference and "demonstration" not in record and "answer" not in record:
            raise RetainError("needs a demonstration or an answer to score against", file=str(path),
                              line=number, field="answer")
        examples.append(Example(prompt=record["prompt"], demonstration=record.get("demonstration", ""),
                                answer=record.get("answer")))
    if not examples:
        raise RetainError("no examples (the file is empty)", file=str(path))
    return examples


def read_skill(path: str | Path, *, name: str | None = None, test_fraction: float = 0.2, seed: int = 0,
               scorer: str = "exact") -> Skill:
    """A skill from a JSONL file with a seeded held-out split (by prompt) for evaluation."""
    examples = read_examples(path)
    train, test = split_held_out(examples, test_fraction, seed)
    return Skill(name=name or Path(path).stem, train=train or examples, test=test, scorer=scorer)


def write_examples(path: str | Path, examples: list[Example]) -> None:
    """Write examples as JSONL (``answer`` only when present)."""
    with open(path, "w", encoding="utf-8") as handle:
        for e in examples:
            record = {"prompt": e.prompt, "demonstration": e.demonstration}
            if e.answer is not None:
                record["answer"] = e.answer
            handle.write(json.dumps(record) + "\n")
