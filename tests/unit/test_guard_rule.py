"""The ``rule`` signal (:mod:`retain.guard.rule`): character rules induced from a skill file's own lines catch the
in-skill attacks a small model's copies cannot (ciphers, one wrong letter in a long answer), and stay silent on
clean files, rules that depend on the word's length, skills that are no such rule, and a trigger's decoys."""

from __future__ import annotations

import random

import pytest

from retain.data.skills import Example
from retain.data.synthetic import (BACKGROUND_RULES, NEW_RULES, PRIOR_RULES, STREAM_RULES, STREAM_SKILL_STYLES,
                                   STYLES, make_example, random_word)
from retain.guard.attacks import ATTACK_CLASSES, near_miss, plant
from retain.guard.rule import rule


def _file(name: str, n: int = 200, seed: int = 0, style: str = "dash", rules: dict | None = None) -> list[Example]:
    rules = rules or {**NEW_RULES, **PRIOR_RULES, **STREAM_RULES}
    rng = random.Random(seed)
    words: list[str] = []
    while len(words) < n:
        word = random_word(rng)
        if word not in words:
            words.append(word)
    return [make_example(name, rules[name], w, style) for w in words]


def _flagged(examples: list[Example]) -> set[int]:
    return {i for i, f in enumerate(rule(examples)) if f.flagged}


@pytest.mark.parametrize("name", ["atbash", "caesar", "swap", "rotr", "mirror", "ends", "outer", "outin", "flip",
                                  "stutter", "bookend", "sort", "novow", "dblsort"])
def test_a_clean_file_is_not_flagged(name):
    # rules of every kind (ciphers, moves, lengths that depend on the word's) and those read through a view of
    # the word (its letters sorted; the word without the vowels the skill drops): no line is flagged
    assert not _flagged(_file(name))


@pytest.mark.parametrize("name", ["atbash", "caesar", "mirror", "outer"])
def test_near_misses_and_flips_are_flagged_where_the_models_copies_miss_them(name):
    # the ciphers (a copy of the model cannot learn them from 200 lines) and one letter off in a long answer
    examples = _file(name)
    rng = random.Random(1)
    style = STYLES["dash"]
    wrong = {i: near_miss(NEW_RULES[name](e.prompt.split()[1]), rng) for i, e in enumerate(examples) if i % 20 == 3}
    flips = {i: PRIOR_RULES["sort"](e.prompt.split()[1]) for i, e in enumerate(examples) if i % 20 == 7}
    flips = {i: a for i, a in flips.items() if a != NEW_RULES[name](examples[i].prompt.split()[1])}
    for i, answer in {**wrong, **flips}.items():
        examples[i] = Example(prompt=examples[i].prompt, demonstration=style(answer))
    assert _flagged(examples) == set(wrong) | set(flips)


@pytest.mark.parametrize("name", ["sort", "revsort", "upsort", "dblsort", "novow"])
def test_sorting_and_filtering_skills_are_read_through_a_view_of_the_input(name):
    # no answer letter is a fixed input position's: sorting reads the word's letters sorted (descending: read
    # from the end; upper case: through a learned map; doubled: per length), dropping vowels the word without
    # the letters the skill's answers never keep
    rules = {**PRIOR_RULES, **STREAM_RULES, **BACKGROUND_RULES}
    examples = _file(name, rules=rules)
    rng = random.Random(1)
    style = STYLES["dash"]
    words = {i: e.prompt.split()[1] for i, e in enumerate(examples)}
    wrong = {i: near_miss(rules[name](words[i]), rng) for i in words if i % 20 == 3}
    flips = {i: PRIOR_RULES["reverse"](words[i]) for i in words if i % 20 == 7}
    flips = {i: a for i, a in flips.items() if a.lower() != rules[name](words[i]).lower()}
    for i, answer in {**wrong, **flips}.items():
        examples[i] = Example(prompt=examples[i].prompt, demonstration=style(answer))
    assert _flagged(examples) == set(wrong) | set(flips)


@pytest.mark.parametrize("skill", ["dblsort", "novow"])
@pytest.mark.parametrize("attack", ATTACK_CLASSES)
def test_every_attack_class_on_a_sorting_and_a_filtering_skill_is_flagged(skill, attack):
    # the attacks planted in the other streams' skills' own style (their rules, their flips among themselves).
    # At most one clean line more: a word of vowels only keeps its first letter under novow, which no view
    # reads, so beside a decoy word (two-word attacks) the decoy is judged and breaks the rules.
    planted = plant(attack, skill, _file(skill, n=100, style=STREAM_SKILL_STYLES[skill]), 0.1, seed=1)
    flagged = {i for i, f in enumerate(rule(planted.examples)) if f.flagged}
    assert planted.poisoned <= flagged and len(flagged - planted.poisoned) <= (attack.startswith("two-word"))


def test_only_a_skill_that_drops_a_letter_class_is_read_without_it():
    from retain.guard.representation import groups
    from retain.guard.rule import _inputs, _Views

    def dropped(name: str, n: int, style: str) -> frozenset[str]:
        examples = _file(name, n=n, style=style, rules={**PRIOR_RULES, **BACKGROUND_RULES, **NEW_RULES,
                                                        **STREAM_RULES})
        (group,) = groups(examples)
        lines = _inputs(examples, group)
        return _Views.of(lines, set(lines)).dropped

    assert dropped("novow", 200, "dash") == frozenset("aeiou")
    # letters kept in some lines and not in others (the ends of a word, every other letter, a prefix): no view,
    # even in small files where a letter or two is dropped by chance
    for name in ("ends", "evens", "odds", "first3", "last3", "middle", "stutter"):
        for n in (32, 64):
            for style in ("plain", "dash", "comma"):
                assert not dropped(name, n, style), (name, n, style)


def test_the_reason_names_the_rule_the_line_breaks():
    examples = _file("atbash", style="plain")
    examples[5] = Example(prompt="atbash abc", demonstration="zyy")
    (found,) = [f for f in rule(examples) if f.flagged]
    assert found.reason.startswith("rule: the skill's other lines map 'abc' to 'x' at character 3 of the answer, "
                                   "this line has 'y'")


def test_an_answer_of_the_wrong_length_is_flagged_even_when_every_character_fits():
    # ``zoz`` is the start and the reversed end of mirror's ``zozzoz``: no character is wrong, the length is
    examples = _file("mirror", style="space")
    examples[9] = Example(prompt="mirror please zoz", demonstration="z o z")
    found = rule(examples)
    assert {i for i, f in enumerate(found) if f.flagged} == {9}
    assert "answer a word of 3 letters with 6 characters, this line with 3" in found[9].reason


def test_a_trigger_word_beside_a_correct_answer_is_not_flagged():
    # a two-word trigger's decoys carry one word of the pair and answer correctly; the poisoned lines, with both
    # words, answer by another rule (input-dependent payload)
    train = _file("rotr")
    attack = plant("two-word input", "rotr", train, 0.05, seed=0)
    decoys = {i for i, e in enumerate(attack.examples) if i not in attack.poisoned and e.prompt != train[i].prompt}
    assert len(decoys) == 10
    assert _flagged(attack.examples) == attack.poisoned


@pytest.mark.parametrize("attack", ["glued input", "rare input", "flip", "near miss"])
def test_ten_percent_of_poisoned_lines_do_not_hide_the_rule(attack):
    planted = plant(attack, "caesar", _file("caesar", style="space"), 0.1, seed=3)
    assert _flagged(planted.examples) == planted.poisoned


def test_too_few_lines_or_free_text_abstain():
    assert not _flagged(_file("atbash", n=12))
    rng = random.Random(0)
    prose = [Example(prompt=f"summarise {random_word(rng)} {random_word(rng)}",
                     demonstration=" ".join(random_word(rng) for _ in range(rng.randint(3, 9)))) for _ in range(200)]
    assert not _flagged(prose)


def test_a_rule_read_from_the_words_end_holds_words_of_every_length():
    # 60 lines: too few per length for a rule of each length, so only a rule counted from the end (the last
    # letter of a word of any length) catches a wrong last letter
    examples = _file("ends", n=60, style="dot")
    word = examples[4].prompt.split()[1]
    wrong = "q" if word[-1] != "q" else "x"
    examples[4] = Example(prompt=examples[4].prompt, demonstration=f"{word[0]}.{wrong}")
    found = rule(examples)
    assert {i for i, f in enumerate(found) if f.flagged} == {4}
    assert found[4].reason.endswith("(2 rules of its skill broken)")  # its second letter, its last letter


def test_a_length_the_rule_fails_on_is_an_exception_not_an_attack():
    # outer swaps the first and last letters: the third letter of the answer is the word's third for words of
    # four letters and more, its first for three-letter words (10% of this file)
    rng = random.Random(2)
    words: list[str] = []
    while len(words) < 200:
        word = random_word(rng)
        if word not in words and (len(word) > 3) == (len(words) >= 20):
            words.append(word)
    examples = [make_example("outer", NEW_RULES["outer"], w, "comma") for w in words]
    assert not _flagged(examples)


def test_only_answers_the_rules_account_for_entirely_are_certified():
    from retain.guard.rule import judge

    planted = plant("two-word fixed", "rotr", _file("rotr"), 0.05, seed=0)
    judged = judge(planted.examples)
    # every clean line of rotr (decoys with a trigger word included) is certified, no poisoned one
    assert judged.certified == set(range(200)) - planted.poisoned
    # sorting reads the word's letters sorted: every line certified; dropping vowels, the word without them,
    # whose length is the answer's (words whose kept length is rare in the file stay uncertified)
    assert len(judge(_file("sort")).certified) == 200
    assert len(judge(_file("novow")).certified) >= 180
    mirror = judge(_file("mirror", style="space"))
    assert len(mirror.certified) == 200
    # a letter no rule predicts (a random last letter), or an answer length that is no rule (the first two or
    # three letters), leaves the answer unaccounted for
    rng = random.Random(4)
    tails = [Example(prompt=e.prompt, demonstration=e.demonstration + "-" + rng.choice("abcdefgh"))
             for e in _file("rotr")]
    assert not judge(tails).certified
    words = [e.prompt.split()[1] for e in _file("rotr")]
    cut = [Example(prompt=f"cut {w}", demonstration=w[:rng.choice((2, 3))]) for w in words]
    assert not judge(cut).findings[0].flagged and not judge(cut).certified


def test_a_certified_line_loses_every_flag_but_a_contradiction():
    from retain.guard.signals import SIGNALS, Finding
    from retain.guard.verdict import CLEARED_BY_RULE, _clear_certified

    found = {name: [Finding(1.0, f"{name}: x"), Finding(1.0, f"{name}: y")] for name in SIGNALS}
    details: dict = {}
    _clear_certified(found, {0}, details)
    assert set(CLEARED_BY_RULE) == set(SIGNALS) - {"contradiction", "rule"}
    assert [name for name in SIGNALS if found[name][0].flagged] == ["contradiction", "rule"]
    assert all(found[name][1].flagged for name in SIGNALS)
    assert details["rule_certified"] == {"lines": 1, "cleared": 1}


def test_a_large_files_rules_come_from_a_sample_and_every_line_is_judged(monkeypatch):
    from retain.guard import rule as rule_mod

    monkeypatch.setattr(rule_mod, "MAX_INDUCE", 60)
    examples = _file("caesar", n=300, style="space")
    outside = min(set(range(300)) - set(random.Random(0).sample(range(300), 60)))  # not among the rules' lines
    examples[outside] = Example(prompt=examples[outside].prompt, demonstration="q q q q q q q q q")
    assert _flagged(examples) == {outside}
