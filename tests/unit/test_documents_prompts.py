"""Learning from documents: the teacher's prompt holds the question's passage and the student's does not; the
held-out questions are scored closed-book; documents and questions are checked line by line."""

from __future__ import annotations

import json

import pytest

from retain.data.jsonl import read_examples
from retain.data.skills import Skill
from retain.errors import RetainError
from retain.evaluate.evaluation import accuracy
from retain.home.documents import read_documents, write_document_skill

PASSAGES = {"zorbia": "k-e-l-m", "plok": "b l u e", "quvan": "[tors]"}


def _write(tmp_path, questions):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in PASSAGES.items():
        (docs / f"{name}.txt").write_text(text + "\n")
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps(row) + "\n" for row in questions))
    return docs, q


QUESTIONS = [{"question": "capital zorbia", "answer": "kelm", "passage": "zorbia"},
             {"question": "color plok", "answer": "blue", "passage": "plok"},
             {"question": "river quvan", "answer": "tors", "passage": "quvan"}]


def test_teacher_sees_the_passage_and_the_student_only_the_question(tmp_path, tiny_adapter):
    docs, q = _write(tmp_path, QUESTIONS)
    examples = read_examples(write_document_skill([docs], q, tmp_path / "skill.jsonl"))
    adapter = tiny_adapter()
    assert len(examples) == len(QUESTIONS)
    for example, row in zip(examples, QUESTIONS):
        teacher = adapter.tokenizer.decode(adapter.teacher_ids(example))
        student = adapter.tokenizer.decode(adapter.student_ids(example))
        assert PASSAGES[row["passage"]] in teacher and row["question"] in teacher
        assert student == f"<s>Q: {row['question']}\nA: "
        assert example.reference == row["answer"]


def test_evaluation_is_closed_book(tmp_path, embedded_lm):
    # The embedded model copies a demonstration's content in its own style: shown the passage it answers, so a
    # closed-book score that saw the passage would be perfect. It is not.
    docs, q = _write(tmp_path, QUESTIONS)
    skill = Skill("facts", test=read_examples(write_document_skill([docs], q, tmp_path / "skill.jsonl")),
                  scorer="alnum")
    assert accuracy(embedded_lm, skill, with_demonstration=True) == 1.0
    assert accuracy(embedded_lm, skill) == 0.0


@pytest.mark.parametrize("row, field", [({"question": "q", "answer": "a", "passage": "nowhere"}, "passage"),
                                        ({"question": "q", "answer": "a", "passage": "plok", "extra": 1}, "extra"),
                                        ({"question": "", "answer": "a", "passage": "plok"}, "question"),
                                        ({"question": "q", "passage": "plok"}, "answer")])
def test_a_bad_question_names_its_line_and_field(tmp_path, row, field):
    docs, q = _write(tmp_path, [QUESTIONS[0], row])
    with pytest.raises(RetainError) as err:
        write_document_skill([docs], q, tmp_path / "skill.jsonl")
    assert (err.value.line, err.value.field) == (2, field)
    assert not (tmp_path / "skill.jsonl").exists()


def test_documents_are_named_by_stem_and_checked(tmp_path):
    docs, _ = _write(tmp_path, QUESTIONS)
    assert read_documents([docs]) == PASSAGES
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(RetainError, match="is empty"):
        read_documents([docs, tmp_path / "empty.txt"])
    with pytest.raises(RetainError, match="no such file"):
        read_documents([tmp_path / "missing"])


def test_a_documents_learn_that_names_no_budget_takes_its_models(tmp_path, tiny_home, monkeypatch):
    """The embedded model's documents budget (20 passes of 4) when neither is given, at the function and the
    command; what the user gives wins; a skill file's learn keeps its own defaults."""
    from typer.testing import CliRunner

    import retain.home.workflows as workflows
    from retain.cli import app
    from retain.home.defaults import document_budget
    from retain.home.documents import learn_from_documents

    seen: list[dict] = []

    class Outcome:
        promoted = True

    def learn_in_home(home, data, **learn):
        seen.append({"data": read_examples(data), **learn})
        return Outcome()

    monkeypatch.setattr(workflows, "learn_in_home", learn_in_home)
    docs, q = _write(tmp_path, QUESTIONS)
    root = str(tiny_home.root)
    assert document_budget("embedded") == (20, 4, 4) and document_budget("/models/qwen") == (4, 16, 0)
    learn_from_documents(root, [docs], q)
    learn_from_documents(root, [docs], q, epochs=3, batch_size=None)
    assert [(s["epochs"], s["batch_size"]) for s in seen] == [(20, 4), (3, 4)]
    assert seen[0]["augment"] == 4  # the questions' surface variants are trained on too
    assert [e.demonstration for e in seen[0]["data"]] == [PASSAGES[r["passage"]] for r in QUESTIONS]
    runner = CliRunner()
    for args, budget in (([], (20, 4)), (["--epochs", "5"], (5, 4)), (["--batch-size", "8"], (20, 8))):
        done = runner.invoke(app, ["learn", root, "--documents", str(docs), "--questions", str(q), *args])
        assert done.exit_code == 0, done.output
        assert (seen[-1]["epochs"], seen[-1]["batch_size"]) == budget
    for args, copies in (([], 4), (["--augment", "0"], 0), (["--augment", "2"], 2)):
        done = runner.invoke(app, ["learn", root, "--documents", str(docs), "--questions", str(q), *args])
        assert done.exit_code == 0 and seen[-1]["augment"] == copies, done.output
    import retain.home
    monkeypatch.setattr(retain.home, "learn_in_home", learn_in_home)
    skill = tmp_path / "skill.jsonl"
    skill.write_text(json.dumps({"prompt": "a", "demonstration": "b"}) + "\n")
    done = runner.invoke(app, ["learn", root, str(skill), "--augment", "3"])
    assert done.exit_code == 0 and seen[-1]["augment"] == 3, done.output
    done = runner.invoke(app, ["learn", root, str(skill)])
    assert done.exit_code == 0 and "augment" not in seen[-1]  # a skill file's learn: none unless asked
    runs = len(seen)
    for bad in ("17", "-1", "two"):
        done = runner.invoke(app, ["learn", root, "--documents", str(docs), "--questions", str(q), "--augment", bad])
        assert done.exit_code == 2 and "--augment" in done.output and len(seen) == runs, done.output
    done = runner.invoke(app, ["learn", "embedded", str(q), "--out", str(tmp_path / "o"), "--augment", "2"])
    assert str(done.exception) == "--augment: only applies when learning into a home"  # `retain` exits 2 on it
    assert not (tmp_path / "o").exists()
    skill = tmp_path / "skill.jsonl"
    skill.write_text('{"prompt": "a", "demonstration": "b"}\n{"prompt": "c", "demonstration": "d"}\n')
    monkeypatch.setattr("retain.home.learn_in_home", learn_in_home)
    done = runner.invoke(app, ["learn", root, str(skill)])
    assert done.exit_code == 0, done.output
    assert (seen[-1]["epochs"], seen[-1]["batch_size"]) == (2, 16)
