"""Reading skill files: one JSON object per line with ``prompt``, ``demonstration`` and optional ``answer``.

``prompt`` and ``demonstration`` are strings, or chat message lists as TRL's conversational datasets have them
(``[{"role": "system", "content": ...}, {"role": "user", "content": ...}]``). A conversational prompt must end
with a user turn: the messages before it are the example's ``context`` (rendered with the tokenizer's chat
template before the student's and the teacher's user turn), and the teacher sees the demonstration inside that
last turn, as TRL's ``SDFTTrainer`` builds it. A demonstration given as messages is their contents joined by
newlines (TRL's ``privileged_context``).

Every problem is reported with the file, the 1-based line and the field, before anything is trained or written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retain.data.skills import Example, Message, Skill, split_held_out
from retain.errors import RetainError

REQUIRED = ("prompt", "demonstration")
KNOWN = ("prompt", "demonstration", "answer")
ROLES = ("system", "user", "assistant")


def _messages(value: list[Any], where: dict[str, Any]) -> list[Message]:
    """A chat message list as (role, content) pairs; one line naming file, line and field when malformed."""
    if not value:
        raise RetainError("must not be an empty message list", **where)
    out = []
    for i, message in enumerate(value):
        at = {**where, "field": f"{where['field']}[{i}]"}
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise RetainError('must be a message {"role": ..., "content": ...}', **at)
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise RetainError(f"role must be one of {', '.join(ROLES)}, got {role!r}", **at)
        if not isinstance(content, str):
            raise RetainError(f"content must be a string, got {type(content).__name__}", **at)
        out.append((role, content))
    return out


def _prompt(value: Any, where: dict[str, Any]) -> tuple[str, tuple[Message, ...]]:
    """The last user turn's text and the messages before it."""
    if isinstance(value, str):
        return value, ()
    messages = _messages(value, where)
    if messages[-1][0] != "user":
        raise RetainError(f"a conversational prompt must end with a user message, not {messages[-1][0]}",
                          **{**where, "field": f"prompt[{len(messages) - 1}]"})
    return messages[-1][1], tuple(messages[:-1])


def _demonstration(value: Any, where: dict[str, Any]) -> str:
    return value if isinstance(value, str) else "\n".join(c for _, c in _messages(value, where) if c)


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
            chat = name != "answer" and isinstance(record.get(name), list)
            if name in record and not isinstance(record[name], str) and not chat:
                raise RetainError(f"must be a string, got {type(record[name]).__name__}", file=str(path),
                                  line=number, field=name)
        prompt, context = _prompt(record["prompt"], {"file": str(path), "line": number, "field": "prompt"})
        demonstration = _demonstration(record.get("demonstration", ""),
                                       {"file": str(path), "line": number, "field": "demonstration"})
        if not prompt.strip():
            raise RetainError("must not be empty", file=str(path), line=number, field="prompt")
        if require_demonstration and not demonstration.strip():
            raise RetainError("must not be empty", file=str(path), line=number, field="demonstration")
        if require_reference and "demonstration" not in record and "answer" not in record:
            raise RetainError("needs a demonstration or an answer to score against", file=str(path),
                              line=number, field="answer")
        examples.append(Example(prompt=prompt, demonstration=demonstration, answer=record.get("answer"),
                                context=context, source=f"{path}:{number}"))
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
    """Write examples as JSONL (``answer`` only when present; a conversational prompt as its message list)."""
    with open(path, "w", encoding="utf-8") as handle:
        for e in examples:
            prompt: Any = [{"role": r, "content": c} for r, c in (*e.context, ("user", e.prompt))] \
                if e.context else e.prompt
            record = {"prompt": prompt, "demonstration": e.demonstration}
            if e.answer is not None:
                record["answer"] = e.answer
            handle.write(json.dumps(record) + "\n")
