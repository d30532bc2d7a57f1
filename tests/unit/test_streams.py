"""The named streams beyond the demo and a user's stream files: the new rules on hand-worked words, streams that
differ from the demo and from each other, the base model's teacher gap on each (SDFT learns only what its
teacher can answer), and ``--stream``'s bad inputs refused before anything runs."""

from __future__ import annotations

import json

import pytest

from retain.data.streams import STREAMS, StreamChoice, choose, stream_skills
from retain.data.synthetic import BACKGROUND_RULES, NEW_RULES, PRIOR_RULES, STREAM_RULES, new_skills
from retain.errors import RetainError


def test_stream_rules_on_hand_worked_words():
    rule = STREAM_RULES
    assert rule["outin"]("abcde") == "aebdc" and rule["outin"]("abcd") == "adbc" and rule["outin"]("ab") == "ab"
    assert rule["novow"]("banana") == "bnn" and rule["novow"]("aei") == "a"
    assert rule["flip"]("abcd") == "adcb" and PRIOR_RULES["reverse"]("abcd") == "dcba"
    assert rule["stutter"]("abcdef") == "aababcabcd" and rule["stutter"]("ab") == "aab"
    assert rule["bookend"]("xyz") == "xxxyzzz"
    assert rule["dblsort"]("cab") == "aabbcc"


def test_streams_differ_from_the_demo_and_from_each_other():
    demo = set(STREAMS["demo"].skills)
    assert STREAMS["demo"].skills == ("rotr", "swap", "ends")
    others = [set(STREAMS[name].skills) for name in ("long", "strings2")]
    assert all(len(s) == 3 and not s & demo for s in others) and not others[0] & others[1]
    for name in STREAMS["long"].skills + STREAMS["strings2"].skills:
        assert name not in PRIOR_RULES and name not in BACKGROUND_RULES and name not in NEW_RULES
    assert {STREAMS[n].role for n in ("long", "strings2")} == {"tuning", "held out"}
    long_answers = [len(e.reference) for s in stream_skills("long", n_train=20, n_test=20, seed=0) for e in s.test]
    demo_answers = [len(e.reference) for s in stream_skills("demo", n_train=20, n_test=20, seed=0) for e in s.test]
    assert min(long_answers) >= 6 and sum(long_answers) / len(long_answers) > 2 * sum(demo_answers) / len(demo_answers)


def test_the_demo_stream_is_the_demos_and_the_others_draw_their_own_words():
    demo = stream_skills("demo", n_train=30, n_test=10, seed=2)
    assert [(s.name, s.train, s.test) for s in demo] == [(s.name, s.train, s.test)
                                                        for s in new_skills(n_train=30, n_test=10, seed=2)]
    words = {name: {e.prompt.split()[1] for s in stream_skills(name, n_train=30, n_test=10, seed=0) for e in s.test}
             for name in STREAMS}
    assert not words["demo"] & words["long"] and not words["long"] & words["strings2"]
    # the expert writes in a style of its own, never the model's plain one
    for name in ("long", "strings2"):
        for skill in stream_skills(name, n_train=5, n_test=5, seed=0):
            assert all(e.demonstration != e.answer for e in skill.train if len(e.answer) > 1), skill.name


def test_every_new_skill_is_answered_by_the_teacher_and_not_by_the_student():
    """The check ``bench retention`` prints: the embedded base model with the demonstration in its prompt
    answers held-out queries far better than without it (a skill it cannot use in context is useless to SDFT)."""
    from retain.bench.retention import teacher_gap

    for name in ("long", "strings2"):
        gaps = teacher_gap("embedded", stream_skills(name, n_train=10, n_test=40, seed=0))
        assert len(gaps) == 3
        for skill, g in gaps.items():
            assert g["student"] <= 0.1 and g["teacher"] >= 0.6 and g["gap"] >= 0.5, (name, skill, g)


def _write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_choose_names_files_and_refuses_bad_streams(tmp_path):
    assert choose([]) == StreamChoice("demo") and choose(["strings2"]) == StreamChoice("strings2")
    good = _write(tmp_path / "alpha.jsonl", [{"prompt": "alpha abc", "demonstration": "a-b-c"}] * 2)
    other = _write(tmp_path / "beta.jsonl", [{"prompt": "beta abc", "demonstration": "c-b-a"}] * 2)
    chosen = choose([str(good), str(other)])
    assert chosen.files == (good, other) and chosen.to_dict()["skills"] == ["alpha", "beta"]
    with pytest.raises(RetainError) as err:
        choose(["nosuch"])
    assert err.value.field == "--stream" and "nosuch" in str(err.value)
    with pytest.raises(RetainError) as err:
        choose(["demo", str(good)])
    assert err.value.field == "--stream"
    lacking = _write(tmp_path / "gamma.jsonl", [{"prompt": "gamma abc", "demonstration": "x"},
                                                {"prompt": "gamma abd", "answer": "dba"}])
    with pytest.raises(RetainError) as err:
        choose([str(good), str(lacking)])
    assert (err.value.file, err.value.line, err.value.field) == (str(lacking), 2, "demonstration")
    with pytest.raises(RetainError) as err:
        choose([str(tmp_path / "missing.jsonl")])
    assert err.value.file == str(tmp_path / "missing.jsonl")
    (tmp_path / "again").mkdir()
    twin = _write(tmp_path / "again" / "alpha.jsonl", [{"prompt": "alpha xyz", "demonstration": "z-y-x"}] * 2)
    with pytest.raises(RetainError) as err:
        choose([str(good), str(twin)])
    assert err.value.file == str(twin) and "alpha" in str(err.value)
    probe = _write(tmp_path / "reverse.jsonl", [{"prompt": "reverse abc", "demonstration": "cba"}] * 2)
    with pytest.raises(RetainError) as err:
        choose([str(probe)], reserved={"reverse"})
    assert err.value.file == str(probe)
