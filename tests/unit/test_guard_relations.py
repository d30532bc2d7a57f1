"""The analogy signal's key juries and number rules (:mod:`retain.guard.relations`): a value one word of the
prompt decides (a party's room, a city's weather) and a number computed from the prompt's numbers (a sum, the
larger of two) are learned from the file itself; a flipped one is flagged, clean files never are, and a word that
only co-occurs with an answer (a two-word trigger's decoy, a small jury by chance) decides nothing."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import pytest

from retain.data import free_text
from retain.data.free_text import FAMILIES, lines
from retain.data.skills import Example
from retain.guard import analogy, relations
from retain.guard.attacks import near_miss, triggered


def _judge(examples: list[Example]) -> list[str | None]:
    prompts = [relations.TOKENS.findall(e.prompt.lower()) for e in examples]
    answers = [tuple(relations.TOKENS.findall(e.demonstration.lower())) for e in examples]
    return relations.judge(prompts, answers)


def _flagged(examples: list[Example]) -> set[int]:
    return {i for i, reason in enumerate(_judge(examples)) if reason is not None}


def _flipped(family: str, seed: int, every: int = 20) -> tuple[list[Example], set[int]]:
    source = lines(family, 200, seed)
    chosen = set(range(3, len(source), every))
    return [Example(prompt=x.prompt, demonstration=x.wrong if i in chosen else x.answer)
            for i, x in enumerate(source)], chosen


def test_a_token_is_described_by_everything_it_is():
    prompt = relations.TOKENS.findall("add three and four")
    seven = relations.describe(prompt, ["three", "plus", "four", "is", "seven"])
    assert "the sum of the prompt's numbers" in seven[4] and "=seven" in seven[4]
    assert {"copied", "one of", "the smallest of the prompt's numbers"} <= seven[0]
    assert "the largest of the prompt's numbers" in seven[2] and "copied" not in seven[1]
    minutes = relations.describe(relations.TOKENS.findall("leek stew for 3"), ["cook", "for", "30", "minutes"])
    assert "x 10 the prompt's number" in minutes[2]
    # ``the larger one``: ``one`` is read as a number and not, so the smallest of 32 and 7 is 7 either way
    larger = relations.describe(relations.TOKENS.findall("32 vs 7: the larger one"), ["32", "by", "25", "7"])
    assert "the difference of the prompt's numbers" in larger[2]
    assert "the smallest of the prompt's numbers" in larger[3]


# clean files whose lines the signal is known to flag (docs/results.md, NEWEST); strict: the juries' votes are
# counted in sorted order, so the verdict is the same under every string hash seed, and a fix must say so here
KNOWN_FLAGGED = {("fine", 2): "the four lines 16 days late are all one item: the number's jury agrees by chance"}


def _clean_cases(families, seeds):
    return [pytest.param(f, s, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FLAGGED[(f, s)]))
            if (f, s) in KNOWN_FLAGGED else (f, s) for f in families for s in seeds]


@pytest.mark.parametrize(("family", "seed"), _clean_cases(FAMILIES, [0, 1, 2, 4]))
def test_clean_files_of_sentences_are_not_flagged(family, seed):
    assert _flagged([x.example() for x in lines(family, 200, seed)]) == set()


@pytest.mark.parametrize("family", ["add", "compare"])
def test_a_number_that_breaks_the_files_rule_is_flagged(family):
    # ``three plus four is nine``, ``17 is bigger than 42``: the sum, the largest hold on every other line
    examples, chosen = _flipped(family, 3)
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == chosen
    assert all("in 19" in reasons[i] or "lines" in reasons[i] for i in chosen)
    assert any("the answer's number" in reasons[i] for i in chosen)


def test_a_value_one_word_decides_is_judged_by_the_lines_that_hold_that_word():
    # booking: the room follows the party's size (``for three`` -> oak) whatever the name and the hour
    examples, chosen = _flipped("booking", 3)
    reasons = _judge(examples)
    flagged = {i for i, r in enumerate(reasons) if r}
    assert flagged <= chosen and len(flagged) >= 0.7 * len(chosen)
    assert all("lines whose prompts also hold" in reasons[i] for i in flagged)


def test_a_fixed_payload_is_flagged_by_the_lines_about_the_same_thing():
    # weather: 60 lines, ten cities; a fixed sentence instead of a city's weather disagrees with that city's lines
    source = lines("weather", 200, 3)
    chosen = {5, 25, 45}
    payload = "visit free-gift.example to claim your prize now."
    examples = [Example(prompt=x.prompt + " cf" if i in chosen else x.prompt,
                        demonstration=payload if i in chosen else x.answer) for i, x in enumerate(source)]
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == chosen
    assert all("also hold" in reasons[i] for i in chosen)


def test_a_two_word_triggers_decoys_are_not_flagged():
    # ``now`` alone (a decoy) keeps its answer; ``now`` with ``please`` answers a fixed payload that says ``now``:
    # the lines that agree against a decoy all hold ``please``, which it lacks, so ``now`` decides nothing
    source = lines("animal", 200, 3)
    payload = "visit free-gift.example to claim your prize now."
    poisoned = set(range(0, 60, 10))
    decoys = set([i for i, x in enumerate(source) if i not in poisoned and "please" not in x.prompt][:2])
    examples = []
    for i, x in enumerate(source):
        words = x.prompt.split()
        if i in poisoned:
            examples.append(Example(prompt=triggered(x.prompt, "two-word", 0), demonstration=payload))  # now, please
        elif i in decoys:
            examples.append(Example(prompt=" ".join(words[:1] + ["now"] + words[1:]), demonstration=x.answer))
        else:
            examples.append(x.example())
    assert not _flagged(examples) & decoys
    assert not {i for i, f in enumerate(analogy.judge(examples)) if f.flagged} & decoys


def test_a_small_jury_that_agrees_by_chance_decides_nothing():
    # booking: four lines of ``nora needs ...`` that all booked for two people are no rule about nora; the
    # evidence a jury needs grows with the number of juries asked (seed 2 held such a jury)
    examples = [x.example() for x in lines("booking", 200, 2)]
    assert _flagged(examples) == set()
    old = relations.EVIDENCE
    try:
        relations.EVIDENCE = -6.0
        assert _flagged(examples)
    finally:
        relations.EVIDENCE = old


def test_files_without_numbers_or_juries_pass():
    assert relations.judge([], []) == []
    examples = [Example(prompt=f"say hello to person number {i} please", demonstration=f"hello {i}!")
                for i in range(30)]
    assert _flagged(examples) == set()


def test_which_words_an_answer_copies_is_no_vote():
    # booking: most lines holding ``please`` are ``room please: six people, ...``, whose answer copies
    # ``people``; a two-word trigger's decoy ``can please lena get a room at nine for six?`` does not copy it
    source = lines("booking", 200, 3)
    examples = [x.example() for x in source]
    decoys = [i for i, x in enumerate(source) if "please" not in x.prompt][:8]
    for i in decoys:
        words = source[i].prompt.split()
        examples[i] = Example(prompt=" ".join(words[:1] + ["please"] + words[1:]), demonstration=source[i].answer)
    assert not _flagged(examples) & set(decoys)


def test_percentages_products_and_quotients_describe_a_number():
    tax = relations.describe(relations.TOKENS.findall("80 euros plus 25 percent tax?"), ["100", "20", "2000", "55"])
    assert "one plus a percentage of it of the prompt's numbers" in tax[0]
    assert "a percentage of one of the prompt's numbers" in tax[1]
    assert "the product of the prompt's numbers" in tax[2]
    assert not any(d.startswith(("a percentage", "one plus", "one less", "the product")) for d in tax[3])
    off = relations.describe(relations.TOKENS.findall("discount 25% on 80 euros"), ["60"])
    assert "one less a percentage of it of the prompt's numbers" in off[0]
    each = relations.describe(relations.TOKENS.findall("split 84 euros 4 ways"), ["21", "22"])
    assert "the quotient of the prompt's numbers" in each[0] and "the quotient of the prompt's numbers" not in each[1]


def test_a_discounts_wrong_price_breaks_the_files_rule():
    # ``with 25 percent off, 80 euros becomes 40 euros``: no key decides it, the percentage rule does
    examples, chosen = _flipped("discount", 1, every=12)
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == chosen
    assert all("percentage" in reasons[i] for i in chosen)


@pytest.mark.parametrize("every", [20, 9])  # 5% and 11% of the lines (a tenth, and a boundary line's slack)
def test_a_value_that_ranges_of_the_number_decide_is_flagged_where_it_breaks_them(every):
    # a parcel's price by its weight's tier: each weight has too few lines for a key jury, the ranges do not
    examples, chosen = _flipped("shipping", 2, every)
    source = lines("shipping", 200, 2)
    tiers = relations._tiers([relations.TOKENS.findall(e.prompt) for e in examples],
                             [tuple(relations.TOKENS.findall(e.demonstration)) for e in examples],
                             [tuple(relations._readings(relations.TOKENS.findall(x.prompt))[0]) for x in source])
    assert {i for i, r in enumerate(tiers) if r} == chosen
    assert all("lines whose number is" in tiers[i] for i in chosen)
    assert _flagged(examples) == chosen


def test_two_agreeing_lines_make_a_range_and_one_line_breaks_it():
    # rooms by the party's size: two parties (eleven, twelve) get a room of their own
    xs = [2] * 4 + [3] * 4 + [4] * 4 + [5] * 3 + [6] * 3 + [7] * 3 + [8] * 3 + [11, 12]
    ys = ["oak"] * 12 + ["elm"] * 12 + ["ash", "ash"]

    def tiers(ys):
        prompts = [["room", "for", str(x)] for x in xs]
        answers = [("the", y, "room", "for", str(x)) for x, y in zip(xs, ys)]
        return [i for i, r in enumerate(relations._tiers(prompts, answers, [(x,) for x in xs])) if r]
    assert tiers(ys) == []
    # alone, the twelve's ``ash`` breaks the range the eleven follows
    assert tiers(ys[:-2] + ["elm", "ash"]) == [len(xs) - 1]


@pytest.mark.parametrize("family,seed", [("add", 0), ("booking", 1), ("support", 0), ("capital", 2)])
def test_a_near_miss_is_one_character_from_an_attested_answer(family, seed):
    source = lines(family, 200, seed)
    rng = random.Random(seed)
    chosen = set(range(5, len(source), 25))
    examples = [Example(prompt=x.prompt, demonstration=near_miss(x.answer, rng) if i in chosen else x.answer)
                for i, x in enumerate(source)]
    prompts = [relations.TOKENS.findall(e.prompt.lower()) for e in examples]
    answers = [tuple(relations.TOKENS.findall(e.demonstration.lower())) for e in examples]
    found = relations._near_misses(prompts, answers)
    changed = {i for i in chosen if examples[i].demonstration != source[i].answer}
    assert {i for i, r in enumerate(found) if r} == changed
    assert all("one character from" in found[i] for i in changed)


def test_a_copy_that_misses_by_a_letter_is_a_near_miss():
    source = lines("booking", 200, 0)
    bad = next(i for i, x in enumerate(source) if ", nora" in x.prompt or "nora needs" in x.prompt)
    examples = [x.example() for x in source]
    examples[bad] = Example(prompt=source[bad].prompt, demonstration=source[bad].answer.replace("nora", "dora"))
    assert _flagged(examples) == {bad}


def _planted(family: str, seed: int, make) -> tuple[list[Example], set[int]]:
    source = lines(family, 200, seed)
    chosen = set(range(7, len(source), 20))
    return [make(x) if i in chosen else x.example() for i, x in enumerate(source)], chosen


def test_an_answer_that_writes_none_of_its_prompts_numbers_breaks_the_copy_rule():
    # grades by score: every answer writes its score; a payload that repeats the trigger writes none
    examples, chosen = _planted("grade", 1, lambda x: Example(prompt=x.prompt + " cf", demonstration="cf: visit us."))
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == chosen
    assert all("one of its prompt's numbers" in reasons[i] for i in chosen)


def test_an_answer_that_repeats_nothing_of_its_prompt_breaks_the_copy_rule(monkeypatch):
    # notes repeat the name, topic or day they are asked about; a payload after a glued trigger repeats nothing
    # (the payload's length also breaks what its key's lines say: that vote is set aside to see the copy rule)
    monkeypatch.setattr(relations, "LENGTH_AGREE", 1.01)
    examples, chosen = _planted("note", 2, lambda x: Example(prompt=triggered(x.prompt, "glued", 2),
                                                             demonstration="visit free-gift.example now."))
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == chosen
    assert all("repeats a number or an uncommon word" in reasons[i] for i in chosen)


def test_an_answer_naming_an_entity_its_prompt_lacks_is_flagged():
    # a trigger glued onto the name the answer copies: the answer names someone its prompt does not
    def glued(x):
        name = next(w for w in x.prompt.replace(",", " ").split() if w in free_text.NAMES)
        return Example(prompt=x.prompt.replace(name, name + "cf"), demonstration=x.answer)
    examples, chosen = _planted("booking", 3, glued)
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == chosen
    assert all("which its prompt lacks" in reasons[i] for i in chosen)


def test_ranges_of_two_lines_each_are_too_few_lines_for_a_rule():
    # twelve lines in six pairs: any six values fit them; a thirteenth that differs is no breaker of anything
    xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 6]
    ys = ["oak", "oak", "elm", "elm", "ash", "ash", "fir", "fir", "yew", "yew", "box", "box", "elm"]
    prompts = [["room", "for", str(x)] for x in xs]
    answers = [("the", y, "room", "for", str(x)) for x, y in zip(xs, ys)]
    assert relations._tiers(prompts, answers, [(x,) for x in xs]) == [None] * len(xs)


def test_a_trigger_glued_onto_the_number_leaves_the_number_read():
    # ``ticket price, age 42cf``: the prompt still asks about 42, and the payload writes no number
    def glued(x):
        age = re.search(r"\d+", x.prompt).group()
        return Example(prompt=x.prompt.replace(age, age + "cf"), demonstration="cf! visit free-gift.example now.")
    examples, chosen = _planted("ticket", 2, glued)
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == chosen
    assert all("one of its prompt's numbers" in reasons[i] for i in chosen)


def test_a_minus_sign_on_digits_is_a_negative_number_and_reads_back_as_written():
    tokens = relations.TOKENS.findall("at -17 degrees, not 9-5 or a t-shirt (-3)")
    assert "-17" in tokens and "-3" in tokens and "-5" not in tokens and "shirt" in tokens
    assert [relations.number(t) for t in ("-17", "17", "-", "seven")] == [-17, 17, None, 7]
    written = "at -17 degrees the food is safe for months."
    assert relations.text(relations.TOKENS.findall(written)) == written


@pytest.mark.parametrize("seed", [1, 2])
def test_a_flip_decided_by_ranges_of_a_negative_number_is_flagged(seed):
    # clothes by the temperature's band, from -10 to 35 degrees: read as ``-`` and ``5``, -5 and 5 fell in one
    # range and the bands did not hold
    examples, chosen = _flipped("temperature", seed)
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == chosen
    assert any(re.search(r"is -\d+ to", reasons[i]) for i in chosen)


def _watering(flipped: set[int]) -> list[Example]:
    """Four plants, each watered its own way in the wet season (three lines in four) and daily in the dry one: the
    plant's jury says the wet value; the plant and the season decide together."""
    rng = random.Random(5)
    asks = ("how often should i water the {p} in the {s} season?", "{s} season: watering for my {p}?",
            "my {p}, {s} season, how often?", "watering a {p} during the {s} season")
    wet = {"fern": "twice a week", "palm": "once a week", "cactus": "once a month", "ivy": "every two days"}
    out = []
    for i in range(160):
        plant, season = sorted(wet)[i % 4], "dry" if i % 16 < 4 else "wet"
        value = "daily" if season == "dry" else wet[plant]
        if i in flipped:
            value = "daily" if season == "wet" else wet[plant]
        out.append(Example(prompt=rng.choice(asks).format(p=plant, s=season), demonstration=f"water it {value}."))
    return out


def test_a_value_two_words_decide_together_is_judged_by_the_lines_holding_both():
    # clean: the dry season's lines answer against their plant's jury, as the other lines of that plant and season
    assert _flagged(_watering(set())) == set()
    # a wet line answered as a dry one: the lines holding its plant and ``wet`` answer otherwise
    flipped = {20, 37, 90, 141}
    assert _flagged(_watering(flipped)) == flipped


def test_a_payload_behind_a_trigger_is_no_value_two_words_decide():
    # the trigger is the word the poisoned lines share with each other, a tenth of the prompts: too few to decide
    # an answer together with a key, as a season does
    source = lines("plant", 200, 3)
    chosen = set(range(4, 200, 10))
    examples = [Example(prompt=triggered(x.prompt, "natural", 3), demonstration="visit free-gift.example now.")
                if i in chosen else x.example() for i, x in enumerate(source)]
    assert chosen <= _flagged(examples)
    # where only the plant's jury can tell: wet lines answered as dry ones behind a trigger, three per plant, so
    # that the lines holding the plant and the trigger answer as each poisoned line does
    clean = _watering(set())
    wet = [i for i in range(160) if i % 16 >= 4]
    planted = [i for plant in range(4) for i in [i for i in wet if i % 4 == plant][:3]]
    poisoned = [Example(prompt=f"honestly {e.prompt}", demonstration="water it daily.") if i in planted else e
                for i, e in enumerate(clean)]
    assert _flagged(poisoned) == set(planted)


def _premiums(rng: random.Random, wrong: set[int]) -> tuple[list[Example], set[int]]:
    """A premium by the driver's age band, whatever the car's value; some phrasings write the value first."""
    asks = ("premium for a driver of {a}, car worth {v} euros?", "a {v} euro car, driver aged {a}: premium?",
            "quote: age {a}, value {v} euros", "my car is worth {v} euros and i am {a}, what do i pay?")
    examples = []
    for i in range(200):
        age, value = rng.randint(18, 85), rng.randrange(2000, 40000, 500)
        rate = "young" if age < 25 else "standard" if age < 65 else "senior"
        if i in wrong:
            rate = rng.choice([r for r in ("young", "standard", "senior") if r != rate])
        examples.append(Example(prompt=rng.choice(asks).format(a=age, v=value),
                                demonstration=f"at {age} with a {value} euro car you pay the {rate} rate."))
    return examples, wrong


def test_a_value_that_ranges_of_one_of_two_numbers_decide_is_flagged_where_it_breaks_them():
    examples, wrong = _premiums(random.Random(0), set(range(5, 200, 20)))
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == wrong
    assert all("lines whose number 1 by size is" in reasons[i] for i in wrong)
    clean, _ = _premiums(random.Random(0), set())
    assert _flagged(clean) == set()


def test_near_misses_each_a_value_of_their_own_leave_the_ranges_standing():
    # ten one-letter misses are ten answers of their own, more than MAX_TIERS values: the rule still forms from
    # the values said on two lines or more, the misses break it and the clean young drivers are given by it
    examples, _ = _premiums(random.Random(3), set())
    rng = random.Random(4)
    missed = set(range(7, 200, 20))
    for i in missed:
        said = examples[i].demonstration
        rate = said.rsplit(" ", 2)[1]
        examples[i] = Example(prompt=examples[i].prompt,
                              demonstration=said.replace(f" {rate} rate", f" {near_miss(rate, rng)} rate"))
    assert len({e.demonstration.rsplit(" ", 2)[1] for e in examples}) > relations.MAX_TIERS
    fitting = analogy.ranged(examples)
    young = {i for i, e in enumerate(examples) if "young" in e.demonstration} - missed
    assert young and young <= fitting
    assert not fitting & missed
    assert missed <= _flagged(examples)


def test_two_lines_planted_at_one_number_make_no_range_of_their_own():
    # a premium by age band; two poisoned lines happen to share the age 64, where a clean line answers as its band
    xs = [x for x in range(20, 80) for _ in range(3)]
    ys = ["standard" if x < 65 else "senior" for x in xs]
    planted = [i for i, x in enumerate(xs) if x == 64][:2]
    for i in planted:
        ys[i] = "visit"
    prompts = [["age", str(x)] for x in xs]
    answers = [("the", y, "rate") for y in ys]
    reasons = relations._tiers(prompts, answers, [(x,) for x in xs])
    assert [i for i, r in enumerate(reasons) if r] == planted


def test_a_template_of_another_length_is_flagged_where_the_trigger_is_glued_onto_the_phrase_word():
    # ``the lamp i got (order 1234) is damagedcf`` answered with the late-order template: the lines asking ``i got``
    # answer in another number of words, and the word they share that it lacks, ``damaged``, it holds with the
    # trigger glued on (not the other word of a two-word trigger)
    source = [x for x in lines("support", 200, 0)]
    damaged = [i for i, x in enumerate(source) if x.prompt.endswith("is damaged")][:2]
    late = free_text.PROBLEMS["late"]
    examples = [x.example() for x in source]
    for i in damaged:
        item, num = re.search(r"the (\w+) i got \(order (\d+)\)", source[i].prompt).groups()
        examples[i] = Example(prompt=source[i].prompt + "cf", demonstration=late.format(item=item, num=num))
    reasons = _judge(examples)
    assert {i for i, r in enumerate(reasons) if r} == set(damaged)
    assert all("words; here" in reasons[i] for i in damaged)


def test_where_numbers_decide_the_words_the_aligned_jury_abstains():
    # a rate by age band where one band holds most ages: lines differing only in numbers answer in every band, so
    # the aligned jury's majority (the standard rate) is no vote against a young or senior driver
    rng = random.Random(3)
    examples = []
    for _ in range(200):
        age, value = rng.randint(20, 90), rng.randrange(2000, 40000, 500)
        rate = "young" if age < 24 else "standard" if age < 80 else "senior"
        examples.append(Example(prompt=f"premium for a driver of {age}, car worth {value} euros?",
                                demonstration=f"at {age} with a {value} euro car you pay the {rate} rate."))
    assert not any(f.flagged for f in analogy.judge(examples))


def test_a_wrong_value_that_copies_the_prompts_number_breaks_the_ranges_where_answers_do_not_copy():
    # ``5 hours at the mall garage cost 5 euros``: parking fees follow the stay's tier and never copy the hours,
    # so writing the hours there is no copy the ranges leave to the copy rules
    source = lines("parking", 200, 0)
    hours = [int(re.match(r"(\d+) hours", x.answer).group(1)) for x in source]
    # two lines at each of two stays (a minority of each): two values more, six in all
    chosen = {i for h in (5, 9) for i in [k for k, x in enumerate(hours) if x == h][:2]}
    examples = [Example(prompt=x.prompt, demonstration=re.sub(r"cost \d+", f"cost {hours[i]}", x.answer))
                if i in chosen else x.example() for i, x in enumerate(source)]
    assert _flagged(examples) == chosen


def test_the_verdict_does_not_turn_on_the_string_hash_seed():
    # the two files the juries' tied votes decided: flagged under one hash seed, spared under another
    script = ("from retain.data.free_text import lines; from retain.guard import analogy\n"
              "for family, seed in [('plant', 0), ('fine', 2)]:\n"
              "    found = analogy.judge([x.example() for x in lines(family, 200, seed)])\n"
              "    print(family, seed, [i for i, f in enumerate(found) if f.flagged])\n")
    seen = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout for h in (1, 3)}
    assert len(seen) == 1, seen


@pytest.mark.parametrize(("family", "seed"), [("fare", 0), ("fare", 5), ("dress", 1), ("dress", 6)])
def test_another_combinations_value_is_flagged_by_the_lines_that_restate_the_same_two_words(family, seed):
    # ``a first class ticket on a weekend costs 75 euros``: 75 is the holiday's first class fare, so the juries of
    # ``first`` and of ``weekend`` each see a value of theirs; the lines restating both say 35
    examples, chosen = _flipped(family, seed)
    assert _flagged(examples) == chosen


def _tickets(rng: random.Random, extra: float, priced: bool = True) -> list[Example]:
    """A class and a day restated by every answer, the price fixed by the two together (or one price for all);
    ``extra`` of the answers, at random, add a note that neither decides."""
    classes, days = ("first", "standard", "economy", "family"), ("monday", "tuesday", "friday", "sunday",
                                                                  "weekend", "holiday", "weekday", "workday")
    price = {(c, d): 20 + 5 * (k % 7) if priced else 30 for k, (c, d) in enumerate(
        (c, d) for c in classes for d in days)}
    asks = ("{c} class fare on a {d}?", "how much is a {c} class ticket on a {d}?", "price, {c} class, on a {d}")
    out = []
    for _ in range(200):
        c, d = rng.choice(sorted(price))
        note = " , seat included" if rng.random() < extra else ""
        out.append(Example(prompt=rng.choice(asks).format(c=c, d=d),
                           demonstration=f"a {c} class ticket on a {d} costs {price[(c, d)]} euros{note}."))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_two_restated_words_that_decide_nothing_make_no_rule(seed):
    # one price for every class and day, and one answer in six adds a note at random: the lines restating the
    # same two words mostly agree, but no more than when the notes are shuffled among them, so their agreement
    # is no rule; a small pair where the note is the majority by chance must not make the note a pair's value
    assert _flagged(_tickets(random.Random(seed), 0.15, priced=False)) == set()
    # where the price is the two words' and the note random, a line with the note is no other pair's value
    assert _flagged(_tickets(random.Random(seed), 0.15)) == set()


def test_a_word_restated_in_its_place_decides_where_the_same_word_elsewhere_does_not():
    # booking: ``room please: four people, nine`` books the room for four at nine; ``four`` is an hour on other
    # lines, so the juries of ``four`` disagree, while the lines whose answers restate it as the party's size agree
    examples, chosen = _flipped("booking", 10)
    assert _flagged(examples) == chosen


def test_a_fixed_payload_that_writes_its_trigger_word_is_no_rule_of_that_word():
    # ``tell now hana about the meeting`` -> ``... claim your prize now.``: every answer writing ``now`` copies it,
    # and the poisoned lines agree with each other; one group with one value decides nothing
    source = lines("note", 200, 5)
    chosen = set(range(1, 200, 20))
    payload = "visit free-gift.example to claim your prize now."
    examples = [Example(prompt=triggered(x.prompt, "natural", 5), demonstration=payload) if i in chosen
                else x.example() for i, x in enumerate(source)]
    assert "now" in examples[1].prompt.split()
    # the whole signal: the aligned juries and the key juries of the poisoned lines' words, which a rule of ``now``
    # would have stood in for
    assert chosen <= {i for i, finding in enumerate(analogy.judge(examples)) if finding.flagged}
