"""What an answer's words and numbers follow from, learned from the file itself (the analogy signal's third and
fourth juries).

The aligned and same-entity juries of :mod:`retain.guard.analogy` compare whole answers of prompts that look
alike. Two kinds of answer escape them: a value that one word of the prompt decides while the rest of the answer
varies (the room a party of ``three`` gets, the days a parcel to ``nalda`` takes, a factor of ``kilograms``), and
a number computed from the prompt's numbers (``three plus four is seven``, ``ends at 13:00``, ``42 is bigger than
17, by 25``), where no two prompts look alike. Both are learned here from the lines themselves, as rule induction
over the file (association rules, Agrawal et al., SIGMOD 1993; noise as exceptions to rules that hold
otherwise, Brodley and Friedl, JAIR 1999):

- **Descriptions.** Each token of an answer is described by a set of what it is: the word itself, ``copied``
  when the prompt holds it, and for a number (digits, or a number word up to ninety) also which function of the
  prompt's numbers it equals: one of them, their largest or smallest, their sum, their difference, or a multiple
  ``x c`` of the prompt's only number. The set is wide on purpose: a number that is both copied and a sum by
  coincidence agrees with lines where it is either.
- **Key juries** (``the lines whose prompts also hold 'three'``). For each word and each pair of adjacent words of
  a prompt, the other lines whose prompts hold it vote, position by position over answers of the same length,
  on what each position is (not on whether it is copied: which words an answer copies follows the prompt's
  phrasing, which a key often picks), and, for one word, on the whole answer (its base rate that of the answer
  with the key's word masked). A line is flagged when such a jury of at least :data:`MIN_VOTES` agrees on a
  description at :data:`AGREE` that the line's token lacks, and the agreement is evidence, not chance: the
  jury's size times the Kullback-Leibler divergence of its share from the description's share among all lines
  must reach the log of the number of juries asked plus :data:`EVIDENCE` nats (a Chernoff bound with a
  Bonferroni correction: all the file's juries drawn at random would reach it with probability below
  ``exp(-EVIDENCE)``), so a word that merely co-occurs with a common template decides nothing. Nor does a jury
  whose agreeing lines all hold another uncommon word the line lacks (the other word of a two-word trigger,
  for its decoy).
- **Number rules** (``the answer's 3rd number is the sum of the prompt's numbers in 198 of 200 lines``). Over
  answers with as many numbers, a function of the prompt's numbers that gives a number slot's value in
  :data:`RULE_SHARE` of at least :data:`RULE_LINES` lines is a rule of the file; a line that breaks it is
  flagged. The word ``one`` is read both as a number and not (``the larger one``).

What this cannot see: a value decided by a function outside those listed (a discount's price), or by several
words together; a poisoned value shared by most lines with its key (poison is a minority by design).
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable

TOKENS = re.compile(r"\w+|[^\w\s]")
MIN_VOTES = 4
AGREE = 0.75
EVIDENCE = 1.0  # nats beyond the log of the number of juries asked: all of them drawn at random would agree this
# well with probability below e^-1 (chosen on seeds 0-5 of eight families: 0, 1 and 2 flag no clean line there)
RULE_SHARE = 0.9
RULE_LINES = 10
_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty").split()
NUMBER_WORDS = {w: i for i, w in enumerate(_SMALL)} | {
    w: 10 * (i + 3) for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split())}
MAX_FACTOR = 10_000
# A word in at least this share of the prompts is phrasing, not what one prompt is about.
COMMON_SHARE = 0.25


def number(token: str) -> int | None:
    """The value of a token that is a number (``42``, ``seven``), else None."""
    if token.isdigit() and len(token) <= 12:
        return int(token)
    return NUMBER_WORDS.get(token)


def _readings(prompt: list[str]) -> list[list[int]]:
    """The prompt's numbers, and without the word ``one`` when it holds one (``the larger one``)."""
    values = [number(t) for t in prompt]
    every = [v for v in values if v is not None]
    without = [v for t, v in zip(prompt, values) if v is not None and t != "one"]
    return [every] if len(without) == len(every) else [every, without]


def _functions(values: list[int]) -> dict[str, int]:
    """What each function of a prompt's numbers gives on them (only those defined for so many numbers)."""
    out: dict[str, int] = {}
    if len(values) >= 2:
        out |= {"the largest of": max(values), "the smallest of": min(values), "the sum of": sum(values),
                "the difference of": max(values) - min(values)}
    return out


def describe(prompt: list[str], answer: Iterable[str]) -> list[frozenset[str]]:
    """Each answer token's description: the set of what it is (see the module's docstring)."""
    held = set(prompt)
    readings = _readings(prompt)
    out = []
    for token in answer:
        what = {"=" + token}
        if token in held and token.isalnum():
            what.add("copied")
        value = number(token)
        if value is not None:
            for values in readings:
                if value in values:
                    what.add("one of")
                what.update(f"{name} the prompt's numbers" for name, v in _functions(values).items() if v == value)
                if len(values) == 1 and values[0] and value % values[0] == 0 and 1 < value // values[0] <= MAX_FACTOR:
                    what.add(f"x {value // values[0]} the prompt's number")
        out.append(frozenset(what))
    return out


def _kl(q: float, p: float) -> float:
    """KL divergence of Bernoulli(q) from Bernoulli(p)."""
    p = min(max(p, 1e-9), 1 - 1e-9)
    out = q * math.log(q / p) if q > 0 else 0.0
    return out + ((1 - q) * math.log((1 - q) / (1 - p)) if q < 1 else 0.0)


def _keys(prompt: list[str]) -> set[str]:
    words = [t for t in prompt if t.isalnum()]
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}


def text(tokens: Iterable[str]) -> str:
    """Tokens joined back into a sentence (no space before punctuation)."""
    out = ""
    for t in tokens:
        out += t if not t[0].isalnum() or not out or out[-1] in "-'" else " " + t
    return out


def _said(d: str) -> str:
    return repr(d[1:]) if d.startswith("=") else d


def judge(prompts: list[list[str]], answers: list[tuple[str, ...]]) -> list[str | None]:
    """A reason per line that breaks what its key juries or the file's number rules say, else None."""
    n = len(prompts)
    described = [describe(p, a) for p, a in zip(prompts, answers)]
    # a whole answer as written, its numbers left to the positions' votes and the rules
    whole = [tuple("#" if t.isdigit() else t for t in a) for a in answers]
    reasons: list[str | None] = [None] * n

    # the file's base rates: each description's share per (answer length, position)
    base: dict[tuple[int, int], Counter] = defaultdict(Counter)
    of_length = Counter(len(ds) for ds in described)
    for ds in described:
        for k, d in enumerate(ds):
            base[(len(ds), k)].update(d)
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, w in enumerate(whole):
        by_length[len(w)].append(i)

    shares: dict[tuple[tuple[str, ...], str], float] = {}

    def form_share(top: tuple[str, ...], key: str) -> float:
        """The share of answers that are ``top`` but for the key's word (the same request about another item):
        a jury about one item agrees with that form's share of the file, not with the item's."""
        if (top, key) not in shares:
            shares[(top, key)] = sum(all(a == b or b == key for a, b in zip(whole[j], top))
                                     for j in by_length[len(top)]) / n
        return shares[(top, key)]

    keys = [_keys(p) for p in prompts]
    words = [{w for w in p if w.isalnum()} for p in prompts]

    in_prompts = Counter(w for ws in words for w in ws)
    common = {w for w, c in in_prompts.items() if c >= COMMON_SHARE * n}

    def explained(i: int, key: str, agreeing: list[int]) -> bool:
        """Whether the lines that agree against line ``i`` also share another uncommon word it lacks: then that
        word, not the key, may decide (the other word of a two-word trigger, whose decoys hold only one). A
        common word is phrasing: a few lines of a small jury share one by chance."""
        shared = set.intersection(*(words[j] for j in agreeing)) - set(key.split()) - common
        return bool(shared - words[i])

    # key juries: per key, the same counts over the lines whose prompts hold it
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, ks in enumerate(keys):
        for key in ks:
            by_key[key].append(i)
    counts: dict[str, tuple[Counter, list, dict]] = {}
    for key, members in by_key.items():
        if len(members) <= MIN_VOTES:
            continue
        lengths, wholes, at = Counter(), Counter(), defaultdict(Counter)
        itself = {"=" + w for w in key.split()}  # that the key's own word is written is no vote
        valued = any(number(w) is not None for w in key.split())
        for j in members:
            lengths[len(described[j])] += 1
            wholes[whole[j]] += 1
            for k, d in enumerate(described[j]):
                # a key that fixes one of the numbers makes a comparison of them depend on the others: no vote;
                # nor is a copy: which words a prompt repeats follows its phrasing, which a key often picks (most
                # lines with ``please`` are ``room please: six people, ...``, whose answer copies ``people``)
                at[(len(described[j]), k)].update(w for w in d - itself if w != "copied"
                                                  and (not valued or w.startswith(("=", "x "))))
        # a line's own votes are never for what it lacks, so the best vote against it needs no recount
        counts[key] = (lengths, wholes.most_common(2), {where: c.most_common(12) for where, c in at.items()})

    # every (line, key, position) is a test: the evidence a jury needs grows with their number (Bonferroni)
    tests = sum(len(described[i]) + 1 for i in range(n) for key in keys[i] if key in counts)
    needed = math.log(max(tests, 1)) + EVIDENCE

    def evident(agree: int, jury: int, share: float) -> bool:
        return jury >= MIN_VOTES and agree >= AGREE * jury and jury * _kl(agree / jury, share) >= needed

    for i in range(n):
        mine, length = described[i], len(described[i])
        for key in sorted(keys[i]):
            if key not in counts:
                continue
            lengths, wholes, at = counts[key]
            jury = len(by_key[key]) - 1
            top, agree = next((w, c) for w, c in wholes + [(None, 0)] if w != whole[i])
            # a whole answer is voted on by the lines that share one word (a pair of words picks a phrasing too)
            if (top is not None and " " not in key and jury >= MIN_VOTES and agree >= AGREE * jury  # cheap first
                    and evident(agree, jury, form_share(top, key))
                    and not explained(i, key, [j for j in by_key[key] if whole[j] == top])):
                reasons[i] = f"{agree} of {jury} lines whose prompts also hold {key!r} answer it {text(top)!r}"
                break
            same = lengths[length] - 1
            if same < MIN_VOTES:
                continue
            for k, d in enumerate(mine):
                c, w = next(((c, w) for w, c in at[(length, k)] if w not in d), (0, None))
                if (w is not None and evident(c, same, base[(length, k)][w] / of_length[length])
                        and not explained(i, key, [j for j in by_key[key] if len(described[j]) == length
                                                   and w in described[j][k]])):
                    reasons[i] = (f"{c} of {same} lines whose prompts also hold {key!r} answer with {_said(w)} where "
                                  f"it says {answers[i][k]!r}")
                    break
            if reasons[i]:
                break

    # number rules: per count of answer numbers, per slot, a function that gives the slot's value almost always
    slots: dict[int, list[int]] = defaultdict(list)
    for i, a in enumerate(answers):
        slots[sum(number(t) is not None for t in a)].append(i)
    for count, members in slots.items():
        if count == 0 or len(members) < RULE_LINES:
            continue
        positions = {i: [k for k, t in enumerate(answers[i]) if number(t) is not None] for i in members}
        for s in range(count):
            holds = Counter(d for i in members for d in described[i][positions[i][s]] if not d.startswith("="))
            for rule, c in holds.items():
                if c < RULE_SHARE * len(members) or c == len(members):
                    continue
                for i in members:
                    if reasons[i] is None and rule not in described[i][positions[i][s]]:
                        reasons[i] = (f"the answer's number {s + 1} is {rule} in {c} of {len(members)} lines; "
                                      f"here {answers[i][positions[i][s]]!r} is not")
    return reasons
