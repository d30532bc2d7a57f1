"""A user's correction becomes the demonstration SDFT's teacher sees, the original conversation the student's
prompt (exact token ids on the embedded model's tokenizer and chat template); feedback bodies are checked and
their ids are the hash of what they say."""

from __future__ import annotations

import json

import pytest

from retain.data.jsonl import read_examples
from retain.errors import RetainError
from retain.home.feedback import example_row, feedback_body

CONVERSATION = {"response_id": "chatcmpl-1", "version": "v3", "kind": "chat", "answer": "ababb",
                "messages": [{"role": "user", "content": "reverse abc"}, {"role": "assistant", "content": "cba"},
                             {"role": "user", "content": "capital zorbia"}]}
TEACHER = ("<s>Q: reverse abc\nA: cba</s>Q: capital zorbia\nThis is an example for a response to the question: kelm\n"
           "Now answer with a response of your own, including the thinking process.\nA: ")
STUDENT = "<s>Q: reverse abc\nA: cba</s>Q: capital zorbia\nA: "


def test_the_correction_is_the_teachers_demonstration_and_the_conversation_the_students_prompt(tmp_path, tiny_adapter):
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps(example_row(CONVERSATION, "kelm")) + "\n")
    (example,) = read_examples(path)
    assert (example.prompt, example.demonstration, example.answer) == ("capital zorbia", "kelm", "kelm")
    adapter = tiny_adapter()
    ids = adapter.tokenizer(TEACHER, add_special_tokens=False)["input_ids"]
    assert adapter.teacher_ids(example) == ids
    assert adapter.student_ids(example) == adapter.tokenizer(STUDENT, add_special_tokens=False)["input_ids"]
    # the model's wrong answer is in neither prompt; the correction only in the teacher's
    assert "ababb" not in adapter.tokenizer.decode(adapter.teacher_ids(example))
    assert "kelm" not in adapter.tokenizer.decode(adapter.student_ids(example))


def test_feedback_is_checked_and_identified_by_what_it_says():
    body = feedback_body(CONVERSATION, -1, "kelm", "alice")
    assert body["served_by"] == "v3" and body["user"] == "alice" and body["id"].startswith("fb-")
    assert feedback_body(CONVERSATION, -1, "kelm", "alice")["id"] == body["id"]
    assert feedback_body(CONVERSATION, -1, "kelmo", "alice")["id"] != body["id"]
    assert feedback_body({**CONVERSATION, "answer": "x"}, -1, "kelm", "alice")["id"] != body["id"]
    for rating in (2, "1", True, None, 0.5):
        with pytest.raises(RetainError, match="rating"):
            feedback_body(CONVERSATION, rating)
    for correction in ("", "  ", 3, "x" * 20_001):
        with pytest.raises(RetainError, match="correction"):
            feedback_body(CONVERSATION, -1, correction)
