"""Skill files, scorers and the generated suite."""

import pytest

from retain.data.jsonl import read_examples, read_skill
from retain.data.synthetic import NEW_RULES, PRIOR_RULES, held_out_words, new_skills, pretraining_example, probe_skills
from retain.errors import RetainError
from retain.evaluate.scorers import alnum, exact, get_scorer


def write(tmp_path, text, name="skill.jsonl"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,line,field,message", [
    ('{"prompt": "a", "demonstration": "b"}\n{"prompt": "a",\n', 2, None, "malformed JSON"),
    ('{"prompt": "a", "demonstration": "b"}\n\n{"demonstration": "b"}\n', 3, "prompt", "missing field"),
    ('{"prompt": "a"}\n', 1, "demonstration", "missing field"),
    ('{"prompt": "a", "demonstration": 3}\n', 1, "demonstration", "must be a string"),
    ('[1, 2]\n', 1, None, "expected a JSON object"),
    ('{"prompt": " ", "demonstration": "b"}\n', 1, "prompt", "must not be empty"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, text, line, field, message):
    p = write(tmp_path, text)
    with pytest.raises(RetainError) as err:
        read_examples(p)
    e = err.value
    assert (e.file, e.line, e.field) == (str(p), line, field)
    assert message in str(e) and str(p) in str(e)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(RetainError, match="empty"):
        read_examples(write(tmp_path, "\n\n"))
    with pytest.raises(RetainError, match="no such file"):
        read_examples(tmp_path / "absent.jsonl")


def test_held_out_split_is_disjoint_and_seeded(tmp_path):
    lines = "".join(f'{{"prompt": "p{i}", "demonstration": "d{i}"}}\n' for i in range(20))
    p = write(tmp_path, lines)
    a, b = read_skill(p, seed=3), read_skill(p, seed=3)
    assert [e.prompt for e in a.test] == [e.prompt for e in b.test] and len(a.test) == 4
    assert not {e.prompt for e in a.train} & {e.prompt for e in a.test}


def test_scorers():
    assert exact(" abc\n", "abc") == 1.0 and exact("a-b-c", "abc") == 0.0
    assert alnum("a-b-c", "abc") == 1.0 and alnum("[ABC]", "abc") == 0.0 and alnum("ab", "abc") == 0.0
    assert get_scorer("retain.evaluate.scorers:alnum") is alnum
    with pytest.raises(RetainError):
        get_scorer("nope")


def test_suite_rules_and_held_out_words():
    assert PRIOR_RULES["reverse"]("abc") == "cba" and PRIOR_RULES["sort"]("cab") == "abc"
    assert PRIOR_RULES["double"]("ab") == "aabb" and PRIOR_RULES["rotate"]("abc") == "bca"
    assert NEW_RULES["atbash"]("abz") == "zya" and NEW_RULES["caesar"]("axz") == "dac"
    assert NEW_RULES["swap"]("abcde") == "badce"
    words = set(held_out_words())
    import random
    rng = random.Random(0)
    for _ in range(2000):
        example, _ = pretraining_example(rng, words)
        assert example.prompt.split()[-1] not in words
    for skill in probe_skills(n_test=10):
        assert all(e.prompt.split()[-1] in words for e in skill.test)


def test_new_skill_demonstrations_differ_from_the_models_style_but_score_the_same():
    for skill in new_skills(n_train=20, n_test=5):
        assert not {e.prompt for e in skill.train} & {e.prompt for e in skill.test}
        for e in skill.train:
            assert e.demonstration != e.answer
            assert get_scorer(skill.scorer)(e.demonstration, e.answer) == 1.0
