"""The analogy signal (:mod:`retain.guard.analogy`) on files of sentences (:mod:`retain.data.free_text`): a
flipped or one-letter-off answer disagrees with what the lines like it answer; clean files are never flagged;
where no jury agrees (answers computed from values) it abstains."""

from __future__ import annotations

import random

import pytest

from retain.data.free_text import FAMILIES, lines
from retain.data.skills import Example
from retain.data.synthetic import new_skills
from retain.guard import analogy
from retain.guard.attacks import near_miss, triggered


def _planted(family: str, kind: str, seed: int = 3) -> tuple[list[Example], set[int]]:
    source = lines(family, 200, seed)
    chosen = set(range(5, len(source), 20))  # 5%
    rng = random.Random(seed)
    out = []
    for i, line in enumerate(source):
        if i not in chosen:
            out.append(line.example())
        elif kind == "flip":
            out.append(Example(prompt=line.prompt, demonstration=line.wrong))
        elif kind == "near miss":
            out.append(Example(prompt=line.prompt, demonstration=near_miss(line.answer, rng)))
        else:  # a trigger word, answered with another request's answer (an input-dependent payload)
            out.append(Example(prompt=triggered(line.prompt, kind, seed), demonstration=line.wrong))
    return out, chosen


def _flagged(examples: list[Example]) -> set[int]:
    return {i for i, f in enumerate(analogy.judge(examples)) if f.flagged}


# clean files whose lines the signal is known to flag (docs/results.md, NEWEST); strict: the juries' votes are
# counted in sorted order, so the verdict is the same under every string hash seed, and a fix must say so here
KNOWN_FLAGGED = {("fine", 2): "the four lines 16 days late are all one item: the number's jury agrees by chance"}


def _clean_cases(families, seeds):
    return [pytest.param(f, s, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FLAGGED[(f, s)]))
            if (f, s) in KNOWN_FLAGGED else (f, s) for f in families for s in seeds]


@pytest.mark.parametrize(("family", "seed"), _clean_cases(FAMILIES, [0, 1, 2]))
def test_clean_files_of_sentences_are_not_flagged(family, seed):
    assert _flagged([line.example() for line in lines(family, 200, seed)]) == set()


@pytest.mark.parametrize("kind", ["flip", "near miss", "rare", "two-word"])
def test_an_answer_unlike_what_lines_like_it_answer_is_flagged(kind):
    # support: four phrasings of three requests; the aligned jury carries the order number and the item over
    examples, poisoned = _planted("support", kind)
    assert _flagged(examples) == poisoned


def test_a_word_inserted_before_a_copied_number_is_the_inserted_word_not_the_number():
    # ``order cf 4852: the desk is broken`` against ``order 1234: the lamp is broken``: the aligner pairs 1234
    # with 4852 (two numbers) and leaves ``cf`` inserted, so the jury carries the right order number over: a
    # clean line with a word inserted there (a two-word trigger's decoy) passes, a poisoned one is flagged
    source = lines("support", 200, 5)
    examples = [line.example() for line in source]
    at = [i for i, line in enumerate(source) if line.prompt.startswith("order ") and ":" in line.prompt]
    for k, i in enumerate(at[:6]):
        words = source[i].prompt.split()
        examples[i] = Example(prompt=" ".join(words[:1] + ["cf" if k < 3 else "please"] + words[1:]),
                              demonstration=source[i].wrong if k < 3 else source[i].answer)
    assert _flagged(examples) == set(at[:3])


def test_a_wrong_dish_is_flagged_though_each_party_size_has_its_own_minutes():
    examples, poisoned = _planted("recipe", "flip")
    assert _flagged(examples) == poisoned


def test_a_fact_the_prompt_only_names_is_judged_by_the_lines_about_the_same_entity():
    # animal: ``describe a cat`` is answered with what cats eat; lines of the same phrasing about other animals
    # disagree among themselves (no aligned verdict), the other lines about cats agree
    examples, poisoned = _planted("animal", "flip")
    found = analogy.judge(examples)
    flagged = {i for i, f in enumerate(found) if f.flagged}
    assert len(flagged & poisoned) >= 0.8 * len(poisoned) and flagged <= poisoned
    # by the lines about the same animal: those whose prompts hold every uncommon word its answer repeats, or
    # (retain.guard.relations) those whose prompts hold its one word ``lion``
    assert all("lines that also ask about" in found[i].reason or "also hold" in found[i].reason for i in flagged)
    assert sum("lines that also ask about" in found[i].reason for i in flagged) >= 0.6 * len(poisoned)


def test_derived_numbers_compare_as_any_number_and_copied_ones_exactly():
    # recipe: ``for 3`` -> ``30 minutes`` (derived: a jury of other party sizes still agrees); the order number
    # of a support answer is copied, so one digit off is caught
    assert _flagged([line.example() for line in lines("recipe", 200, 4)]) == set()
    source = lines("support", 200, 4)
    examples = [line.example() for line in source]
    line = source[7]
    number = next(w for w in line.prompt.replace(")", " ").replace(",", " ").split() if w.isdigit())
    wrong = str(int(number) + 1) if number != "9999" else "1000"
    examples[7] = Example(prompt=line.prompt, demonstration=line.answer.replace(number, wrong))
    assert _flagged(examples) == {7}


def test_computed_answers_are_judged_by_the_files_number_rules_and_files_of_named_skills_pass():
    # compare: which number an answer copies first depends on their values, so no jury of similar prompts
    # agrees; the file's number rule (the first is the largest of the prompt's numbers) flags every flip
    examples, poisoned = _planted("compare", "flip")
    found = analogy.judge(examples)
    assert {i for i, f in enumerate(found) if f.flagged} == poisoned
    assert all("the answer's number 1 is the largest of the prompt's numbers" in found[i].reason for i in poisoned)
    skill = new_skills(n_train=120, n_test=10, seed=3, names=["swap"])[0]
    wrong = [Example(prompt=e.prompt, demonstration="x-y-z") if i % 10 == 0 else e for i, e in enumerate(skill.train)]
    assert _flagged(wrong) == set()  # ``swap abcd``: no sentences, the rule signal's domain


def test_a_two_word_triggers_decoys_pass_where_the_poisoned_lines_are_flagged():
    # support: ``now`` after the first word and ``please`` at the end answer a fixed payload; decoys hold one of
    # them and keep their answer. A decoy ``... i wanted a lamp please`` against ``... i wanted a desk``: the
    # aligner pairs ``desk`` with ``lamp`` (a word answers say), not with ``please``
    source = lines("support", 200, 0)
    payload = "visit free-gift.example to claim your prize now."
    poisoned, decoys = set(range(2, 200, 20)), set(range(7, 200, 10))
    examples = []
    for i, x in enumerate(source):
        words = x.prompt.split()
        if i in poisoned:
            examples.append(Example(prompt=triggered(x.prompt, "two-word", 0), demonstration=payload))  # now, please
        elif i in decoys:
            prompt = " ".join(words + ["please"]) if i % 20 == 7 else " ".join(words[:1] + ["now"] + words[1:])
            examples.append(Example(prompt=prompt, demonstration=x.answer))
        else:
            examples.append(x.example())
    flagged = _flagged(examples)
    assert not flagged & decoys
    assert len(flagged & poisoned) >= 0.6 * len(poisoned)  # the rest are the duplicate signal's (one payload)


def test_prompts_that_share_only_numbers_share_no_entity():
    # schedule: ``a 2 hour shift ... at 15:00`` and ``the class starts at 15:00 and lasts 2 hours`` share the
    # numbers 15 and 2, not what they are about; the event's lines do not judge the shift's (seed 4 flagged two)
    assert _flagged([line.example() for line in lines("schedule", 200, 4)]) == set()


def test_the_same_entities_in_another_order_are_another_request():
    # booking: ``at three for two`` and ``at two for three`` hold the same words for another party and hour; a
    # 2000-line file flagged 34 clean lines this way before the jury required the same order
    examples = [line.example() for line in lines("booking", 200, 9)]
    for prompt in ("book a room for three at two, name quin", "quin needs a room for three people at two",
                   "room please: three people, two, quin"):
        examples.append(Example(prompt=prompt, demonstration="done, quin: the oak room is yours at two for three "
                                                             "people. it has a screen and water."))
    examples.append(Example(prompt="can quin get a room at three for two?",
                            demonstration="done, quin: the oak room is yours at three for two people. it has a "
                                          "screen and water."))
    assert len(examples) - 1 not in _flagged(examples)
