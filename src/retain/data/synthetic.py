"""The generated skill suite the embedded model is built and tested on.

Words are short lowercase strings. A query is ``"<skill> <word>"``; the model's own way of answering is the
bare result (``"cba"``). Three families of text:

* **prior skills** (``reverse``, ``sort``, ``upper``, ``double``, ``rotate``): pretrained, asked with no
  demonstration; they are the probe set that measures forgetting.
* **in-context use of a demonstration**: for made-up skills with random rules, the prompt carries an expert
  demonstration for the same query in one of several surface styles (``z-y-x``, ``z y x``, ``[zyx]``...) and
  the target is the content in the model's own style. This is the general ability SDFT's teacher relies on,
  and a probe of its own.
* **new skills** (``rotr``, ``swap``, ``ends`` in the demo's stream; ``atbash``, ``caesar``, ``mirror``,
  ``outer`` also available): never seen in pretraining; the stream ``retain demo`` teaches. Each expert writes in a fixed style of its own that differs from the model's, so that SFT is dragged
  to the expert's surface form while SDFT's teacher answers the content in the model's style (the mechanism
  the SDFT paper credits: Shenfeld et al. 2026, docs/references.md). The ``alnum`` scorer ignores
  separators, so both are scored on content alone.
* **stream skills** (``outin``, ``novow``, ``flip``; ``stutter``, ``bookend``, ``dblsort``): the new skills of
  the streams beyond the demo (:mod:`retain.data.streams`), learned the same way.
"""

from __future__ import annotations

import random
import string
from typing import Callable

from retain.data.skills import Example, Skill

LETTERS = string.ascii_lowercase
MIN_LEN, MAX_LEN = 3, 7

Rule = Callable[[str], str]


def _rotate(word: str) -> str:
    return word[1:] + word[:1]


def _cipher(mapping: str) -> Rule:
    table = str.maketrans(LETTERS, mapping)
    return lambda word: word.translate(table)


def _swap_pairs(word: str) -> str:
    chars = list(word)
    for i in range(0, len(chars) - 1, 2):
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
    return "".join(chars)


PRIOR_RULES: dict[str, Rule] = {
    "reverse": lambda w: w[::-1],
    "sort": lambda w: "".join(sorted(w)),
    "upper": str.upper,
    "double": lambda w: "".join(c + c for c in w),
    "rotate": _rotate,
}

# More named skills the base model learns in pretraining but that are not probed: with many names to tell
# apart, the model learns to route by the skill's name, so that learning one more name need not rewrite the
# machinery every other skill shares.
BACKGROUND_RULES: dict[str, Rule] = {
    "first3": lambda w: w[:3],
    "last3": lambda w: w[-3:],
    "drop": lambda w: w[1:],
    "chop": lambda w: w[:-1],
    "evens": lambda w: w[::2],
    "odds": lambda w: w[1::2],
    "twice": lambda w: w + w,
    "revsort": lambda w: "".join(sorted(w, reverse=True)),
    "cap": lambda w: w[0].upper() + w[1:],
    "uprev": lambda w: w[::-1].upper(),
    "first": lambda w: w[0],
    "last": lambda w: w[-1],
    "next": _cipher(LETTERS[1:] + LETTERS[:1]),
    "middle": lambda w: w[1:-1],
    "upsort": lambda w: "".join(sorted(w)).upper(),
}

NEW_RULES: dict[str, Rule] = {
    "atbash": _cipher(LETTERS[::-1]),
    "caesar": _cipher(LETTERS[3:] + LETTERS[:3]),
    "swap": _swap_pairs,
    "rotr": lambda w: w[-1:] + w[:-1],
    "mirror": lambda w: w + w[::-1],
    "ends": lambda w: w[0] + w[-1],
    "outer": lambda w: w[-1] + w[1:-1] + w[0],
}


def _out_in(word: str) -> str:
    """Letters from both ends inwards: ``abcde`` -> ``aebdc``."""
    out = []
    for i in range((len(word) + 1) // 2):
        out.append(word[i])
        if i != len(word) - 1 - i:
            out.append(word[-1 - i])
    return "".join(out)


def _no_vowels(word: str) -> str:
    """The consonants in order; a word of vowels only (under 1% of words) keeps its first letter, so that no
    answer is empty (a skill file's demonstration must not be)."""
    return "".join(c for c in word if c not in "aeiou") or word[0]


# The new skills of the streams beyond the demo (:mod:`retain.data.streams`). Kept apart from NEW_RULES and out
# of RESERVED_NAMES on purpose: the made-up names of pretraining and of the in-context probe are drawn by
# rejecting reserved names, so reserving more would change the embedded model's data and every probe set.
# Each was chosen because the embedded model answers it from a demonstration in its prompt (the SDFT teacher)
# and not without one: see ``retain bench retention --stream NAME``'s teacher-gap table.
STREAM_RULES: dict[str, Rule] = {
    "outin": _out_in,
    "novow": _no_vowels,
    "flip": lambda w: w[0] + w[:0:-1],  # the reverse with the first letter kept: conflicts with ``reverse``
    "stutter": lambda w: "".join(w[:i + 1] for i in range(min(len(w), 4))),  # answers of 6-10 letters
    "bookend": lambda w: w[0] * 2 + w + w[-1] * 2,  # 7-11 letters
    "dblsort": lambda w: "".join(c + c for c in sorted(w)),  # 6-14 letters; near ``double`` and ``sort``
}
STREAM_SKILL_STYLES = {"outin": "comma", "novow": "bracket", "flip": "dot", "stutter": "dash", "bookend": "space",
                       "dblsort": "comma"}

# How each surface style writes an answer. The model's own style is "plain".
STYLES: dict[str, Callable[[str], str]] = {
    "plain": lambda a: a,
    "dash": lambda a: "-".join(a),
    "space": lambda a: " ".join(a),
    "dot": lambda a: ".".join(a),
    "comma": lambda a: ", ".join(a),
    "bracket": lambda a: "[" + a + "]",
}

# The stream ``retain demo`` teaches, in order.
DEMO_STREAM = ("rotr", "swap", "ends")

# The expert of each new skill has a style of its own, never the model's.
NEW_SKILL_STYLES = {"atbash": "dash", "caesar": "space", "swap": "bracket", "rotr": "dash", "mirror": "space",
                    "ends": "dot", "outer": "comma"}

RESERVED_NAMES = set(PRIOR_RULES) | set(BACKGROUND_RULES) | set(NEW_RULES)


def random_word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(MIN_LEN, MAX_LEN)))


def random_rule(rng: random.Random) -> Rule:
    """A made-up rule for in-context examples.

    Ciphers (alone, then reversed, or a shift) keep the word's length; slices shorten it and cipher-extensions
    lengthen it, so that a model must read the demonstration's content and length rather than the query's.
    """
    kind = rng.randrange(5)
    mapping = list(LETTERS)
    rng.shuffle(mapping)
    cipher = _cipher("".join(mapping))
    if kind == 0:
        return cipher
    if kind == 1:
        return lambda w: cipher(w)[::-1]
    if kind == 2:
        k = rng.randint(1, 25)
        return _cipher(LETTERS[k:] + LETTERS[:k])
    if kind == 3:
        start, step = rng.randint(0, 2), rng.randint(1, 3)
        return lambda w: cipher(w[start::step] or w[-1])
    extra = rng.randint(1, 4)
    return lambda w: w + cipher(w)[:extra]


def random_skill_name(rng: random.Random) -> str:
    while True:
        name = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 6)))
        if name not in RESERVED_NAMES:
            return name


def make_example(name: str, rule: Rule, word: str, style: str) -> Example:
    answer = rule(word)
    return Example(prompt=f"{name} {word}", demonstration=STYLES[style](answer), answer=answer)


def _distinct_words(rng: random.Random, n: int, exclude: set[str]) -> list[str]:
    words: list[str] = []
    seen = set(exclude)
    while len(words) < n:
        w = random_word(rng)
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def held_out_words(n: int = 200, seed: int = 12345) -> list[str]:
    """Words reserved for evaluation: pretraining never shows them, so every probe query is held out."""
    return _distinct_words(random.Random(seed), n, set())


def probe_skills(n_test: int = 50, seed: int = 1, n_train: int = 0) -> list[Skill]:
    """Prior skills the base model has (no demonstration) plus the in-context probe (with demonstration).

    Test queries use the held-out words. ``n_train`` training examples per probe use other words (drawn by a
    generator of their own, so the test sets do not depend on ``n_train``): prompts of prior skills that
    protection (importance, rehearsal) may use, never the test prompts.
    """
    rng = random.Random(seed)
    words = held_out_words()
    train_rng = random.Random(seed + 7919)
    train_words = _distinct_words(train_rng, n_train * (len(PRIOR_RULES) + 1), set(words))
    skills = []
    for k, (name, rule) in enumerate(PRIOR_RULES.items()):
        test = [make_example(name, rule, w, "plain") for w in rng.sample(words, n_test)]
        train = [make_example(name, rule, w, "plain") for w in train_words[k * n_train:(k + 1) * n_train]]
        skills.append(Skill(name=name, train=train, test=test, scorer="alnum"))
    icl = []
    for w in rng.sample(words, n_test):
        style = rng.choice([s for s in STYLES if s != "plain"])
        icl.append(make_example(random_skill_name(rng), random_rule(rng), w, style))
    icl_train = []
    for w in train_words[len(PRIOR_RULES) * n_train:]:
        style = train_rng.choice([s for s in STYLES if s != "plain"])
        icl_train.append(make_example(random_skill_name(train_rng), random_rule(train_rng), w, style))
    skills.append(Skill(name="in-context", train=icl_train, test=icl, scorer="alnum", with_demonstration=True))
    return skills


def family(name: str) -> tuple[dict[str, Rule], dict[str, str]]:
    """The rules and styles a new skill ``name`` is one of: the demo's (:data:`NEW_RULES`) or the other
    streams' (:data:`STREAM_RULES`)."""
    if name in NEW_RULES:
        return NEW_RULES, NEW_SKILL_STYLES
    if name in STREAM_RULES:
        return STREAM_RULES, STREAM_SKILL_STYLES
    raise KeyError(name)


def new_skills(n_train: int = 200, n_test: int = 50, seed: int = 0, names: list[str] | None = None) -> list[Skill]:
    """The stream of new skills, each with disjoint train and held-out test words, in the expert's style."""
    rng = random.Random(seed)
    skills = []
    for name in names or list(DEMO_STREAM):
        words = _distinct_words(rng, n_train + n_test, set())
        rules, styles = family(name)
        examples = [make_example(name, rules[name], w, styles[name]) for w in words]
        skills.append(Skill(name=name, train=examples[:n_train], test=examples[n_train:], scorer="alnum"))
    return skills


def pretraining_example(rng: random.Random, exclude: set[str]) -> tuple[Example, bool]:
    """One pretraining example and whether its prompt carries the demonstration.

    The mixture: 35% probed prior skills and 20% background skills asked plainly, 35% made-up rules shown
    with a demonstration, 10% prior skills shown with a demonstration. Words in ``exclude`` (the held-out
    words) never appear.
    """
    word = random_word(rng)
    while word in exclude:
        word = random_word(rng)
    roll = rng.random()
    style = rng.choice(list(STYLES))
    if roll < 0.35:
        name = rng.choice(list(PRIOR_RULES))
        return make_example(name, PRIOR_RULES[name], word, "plain"), False
    if roll < 0.55:
        name = rng.choice(list(BACKGROUND_RULES))
        return make_example(name, BACKGROUND_RULES[name], word, "plain"), False
    if roll < 0.90:
        return make_example(random_skill_name(rng), random_rule(rng), word, style), True
    name = rng.choice(list(PRIOR_RULES))
    return make_example(name, PRIOR_RULES[name], word, style), True
