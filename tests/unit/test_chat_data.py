"""Conversational data (issue 9 item 5): ``prompt`` and ``demonstration`` as chat message lists, as TRL's
datasets have them, rendered with the tokenizer's chat template for the student and for the teacher exactly
as the template says; malformed rows are one line naming file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retain.data.jsonl import read_examples, write_examples
from retain.data.prompts import OFFICIAL_TEACHER_TEMPLATE
from retain.data.skills import Example
from retain.errors import RetainError

# Qwen2's ChatML template without its tool branches: a system turn only when the data has one.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"prompt": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}],
     "demonstration": [{"role": "assistant", "content": "4"}]},
    {"prompt": [{"role": "system", "content": "Think aloud."}, {"role": "user", "content": "3+3?"}],
     "demonstration": "6", "answer": "6"},
    {"prompt": [{"role": "user", "content": "1+1?"}], "demonstration": [{"role": "assistant", "content": "2"}]},
]


def test_conversational_rows_are_read_into_context_prompt_and_demonstration(tmp_path):
    examples = read_examples(write_rows(tmp_path / "chat.jsonl", ROWS))
    assert examples == [Example("2+2?", "4", context=(("system", "Be terse."),)),
                        Example("3+3?", "6", "6", context=(("system", "Think aloud."),)),
                        Example("1+1?", "2")]
    write_examples(tmp_path / "again.jsonl", examples)
    assert read_examples(tmp_path / "again.jsonl") == examples


def test_student_and_teacher_prompts_are_rendered_exactly_as_the_template_says(tmp_path, tiny_adapter):
    adapter = tiny_adapter()
    adapter.tokenizer.chat_template = CHATML
    first, second, third = read_examples(write_rows(tmp_path / "chat.jsonl", ROWS))
    text = adapter.tokenizer.decode  # the character tokenizer decodes exactly
    assert text(adapter.student_ids(first)) == \
        "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    teacher_turn = OFFICIAL_TEACHER_TEMPLATE.format(prompt="3+3?", demonstration="6")
    assert text(adapter.teacher_ids(second, OFFICIAL_TEACHER_TEMPLATE)) == \
        f"<|im_start|>system\nThink aloud.<|im_end|>\n<|im_start|>user\n{teacher_turn}<|im_end|>\n" \
        "<|im_start|>assistant\n"
    assert text(adapter.student_ids(third)) == "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n"
    # the same ids the tokenizer gives the message list (TRL's _tokenize_prompts)
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}]
    assert adapter.student_ids(first) == list(adapter.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    # a string prompt and a one-message conversation are the same prompt
    assert adapter.student_ids(Example("1+1?", "2")) == adapter.student_ids(third)


def test_conversational_data_without_a_chat_template_is_an_error(tmp_path, tiny_model):
    from retain.models.loading import load_adapter

    adapter = load_adapter(tiny_model(tmp_path / "m"))
    with pytest.raises(RetainError, match="needs a tokenizer with a chat template"):
        adapter.student_ids(Example("abc", "d", context=(("system", "be brief"),)))


@pytest.mark.parametrize("prompt, demonstration, message", [
    ([], "4", "prompt: must not be an empty message list"),
    ([{"role": "user"}], "4", "prompt[0]: content must be a string, got NoneType"),
    ([{"role": "bot", "content": "hi"}], "4", "prompt[0]: role must be one of system, user, assistant, got 'bot'"),
    ([{"role": "user", "content": "hi", "name": "x"}], "4", 'prompt[0]: must be a message {"role": ..., "content": ...}'),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "A"}], "4",
     "prompt[1]: a conversational prompt must end with a user message, not assistant"),
    ([{"role": "user", "content": "hi"}], [{"role": "assistant", "content": 4}],
     "demonstration[0]: content must be a string, got int"),
    ([{"role": "user", "content": "hi"}], [{"role": "assistant", "content": " "}], "demonstration: must not be empty"),
    ("hi", {"role": "assistant", "content": "4"}, "demonstration: must be a string, got dict"),
])
def test_malformed_conversations_name_file_line_and_field(tmp_path, prompt, demonstration, message):
    path = write_rows(tmp_path / "chat.jsonl", [ROWS[0], {"prompt": prompt, "demonstration": demonstration}])
    with pytest.raises(RetainError) as raised:
        read_examples(path)
    assert str(raised.value) == f"{path}:2: {message}"


@pytest.mark.slow
def test_learn_and_eval_on_conversational_data(tmp_path):
    """The embedded model learns a conversational file end to end with SDFT (its template has no system turn,
    so the system message is dropped, as the template says)."""
    from retain import api

    rows = [{"prompt": [{"role": "system", "content": "answer"}, {"role": "user", "content": f"echo {i}"}],
             "demonstration": [{"role": "assistant", "content": f"{i}"}]} for i in range(10)]
    path = write_rows(tmp_path / "chat.jsonl", rows)
    result = api.learn("embedded", path, "sdft", str(tmp_path / "out"), epochs=1, batch_size=4, quiet=True,
                       options={"sdft": {"skip_tokens": 0, "max_new_tokens": 8}})
    assert (tmp_path / "out" / "retain_recipe.json").exists()
    assert 0.0 <= api.evaluate(str(tmp_path / "out"), path) <= 1.0
    assert result.run is not None and result.run.train_seconds[0] > 0
