"""What an answer's words and numbers follow from, learned from the file itself (the analogy signal's key
juries, number rules, ranges and near misses).

The aligned and same-entity juries of :mod:`retain.guard.analogy` compare whole answers of prompts that look
alike. Some answers escape them: a value that one word of the prompt decides while the rest of the answer
varies (the room a party of ``three`` gets, the days a parcel to ``nalda`` takes, a factor of ``kilograms``), a
number computed from the prompt's numbers (``three plus four is seven``, ``ends at 13:00``, ``42 is bigger than
17, by 25``, ``with 25 percent off, 80 euros becomes 60``), where no two prompts look alike, a value that ranges
of a number decide (a parcel's price by its weight's tier, a grade by the score's band), and a typo. They are
learned here from the lines themselves, as rule induction over the file (association rules, Agrawal et al.,
SIGMOD 1993; noise as exceptions to rules that hold otherwise, Brodley and Friedl, JAIR 1999):

- **Descriptions.** Each token of an answer is described by a set of what it is: the word itself, ``copied``
  when the prompt holds it, and for a number (digits with their sign, ``-5``, or a number word up to ninety) also
  which function of the
  prompt's numbers it equals: one of them, their largest or smallest, their sum, their difference, a multiple
  ``x c`` of the prompt's only number, and of two numbers their product, quotient, one as a percentage of the
  other, and the other plus or less that percentage. The set is wide on purpose: a number that is both copied
  and a sum by coincidence agrees with lines where it is either.
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
  for its decoy), unless the line holds that word with a few characters glued on (``damagedcf``: the trigger);
  nor one where the other lines holding the key and a word of the line that :data:`PAIR_SHARE` of the prompts
  hold answer as the line does (a plant's watering by the plant and the season: two words decide together, and
  a trigger's word is rarer than that).
  A jury also votes on the answer's length in words, at :data:`LENGTH_AGREE` (another template, whatever items
  it names: two templates' phrasings may share a word, three lines to one).
- **Pair rules** (``the lines whose answers also restate 'first' and 'weekend' answer '... costs 35 euros.'``).
  Words that answers restate from their prompts (nine in ten of the answers writing one copy it, as written or
  with a trigger glued on) name what a line is about; two of them may decide the rest of the answer together (a
  fare by class and day, a plant's watering by plant and season), which neither word's jury can see; and one
  restated word in its place may decide where the same word elsewhere does not (``four people`` where other
  lines book ``at four``), which the word's jury cannot tell apart. Per kind (the answer restating k words, the
  x-th of them, or the x-th and the y-th), the lines restating the same word or two are a group, and the answer
  with the restated words masked at their first writing is its form. The kind is a rule of the file when the
  groups of more than :data:`MIN_VOTES` lines agree on a form at :data:`TIER_SHARE` over all their lines; a
  group's value is its form where :data:`AGREE` of its lines say it. A line is flagged when the other lines of
  its group (more than :data:`PAIR_JURY` lines in all) agree on a form at :data:`AGREE` that is some group's
  value, and its own form is another group's value: another pair's answer on the wrong line (a flip). A form
  that is no group's value differs in what no pair decides (an answer with an optional note) and is left to the
  juries above. The lines a pair rule judges, and the lines of a group too small to judge that agree, are not
  asked again by the juries of their restated words.
- **Number rules** (``the answer's 3rd number is the sum of the prompt's numbers in 198 of 200 lines``). Over
  answers with as many numbers, a function of the prompt's numbers that gives a number slot's value in
  :data:`RULE_SHARE` of at least :data:`RULE_LINES` lines is a rule of the file; a line that breaks it is
  flagged. The word ``one`` is read both as a number and not (``the larger one``). A copy that is the larger of
  two numbers on most lines by chance (a price and its tax rate) is excused where every line asking the same
  numbers copies it so and one writes it beside its prompt's word (``20 euros``).
- **The copy rule.** Where the answer writes one of its prompt's numbers on :data:`RULE_SHARE` of the lines whose
  prompts hold one, a line that writes none is flagged (a fixed payload in a file of grades by score); and where
  answers that write a word other prompts name (an entity: a name, a city; one that nine in ten of the answers
  writing it copy from their prompt, not a template's word that one phrasing also asks with) write only their own
  prompt's on :data:`RULE_SHARE` of such lines, a line writing another is flagged (a trigger glued onto the name
  it copies).
- **Ranges** (``lines whose number is 3 to 10 answer '9' there``). Over answers of one length whose prompts hold
  as many numbers (up to :data:`MAX_NUMBERS`, each read by its rank in size), a token that at most
  :data:`MAX_TIERS` ranges of one of those numbers give on :data:`TIER_SHARE` of the lines (found by dynamic
  programming, as a segmentation, each range costing one line), where no single value does, is a rule; its
  breakers are flagged. Its values are those said on :data:`MIN_TIER` lines or more: an answer said once (a near
  miss) is a breaker, not a value (ten near misses are ten values, and had kept the rule from forming).
- **Near misses.** A line one character away from an answer that the file attests place by place (each token of
  the corrected answer, numbers as ``#`` and its prompt's own words as ``@``, where :data:`FORM_LINES` answers as
  long hold it), through a word no other line holds or a copy that misses its prompt's word by a letter.

What this cannot see: a value decided by a function outside those listed, by several words together that the
answers do not restate (the pair excuse above spares such a file's clean lines, but a flip to another
combination's value passes), a flip in a group where poison is over a quarter of the lines, or by ranges
of two numbers together (a price by weight and zone); a poisoned value shared by most lines with its key
or its number (poison is a minority by design); a near miss that writes another word of the file.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

# a minus sign written onto digits, not after a word or number (``-5 degrees``; ``9-5`` is two numbers), is a number
TOKENS = re.compile(r"(?<!\w)-\d+|\w+|[^\w\s]")
MIN_VOTES = 4
AGREE = 0.75
EVIDENCE = 1.0  # nats beyond the log of the number of juries asked: all of them drawn at random would agree this
# well with probability below e^-1 (chosen on seeds 0-5 of eight families: 0, 1 and 2 flag no clean line there)
RULE_SHARE = 0.9
RULE_LINES = 10
MAX_TIERS = 6
MIN_TIER = 2
TIER_LINES = 8  # lines per value the ranges give, at least: fewer and a value's range may hold one line
MAX_VALUES = 200
MAX_NUMBERS = 3  # ranges are sought of each number of prompts holding at most this many
TIER_SHARE = 0.85  # below RULE_SHARE: a tenth of the lines poisoned and a range's edge drawn a line off still fit
FORM_LINES = 5
MAX_GLUED = 4  # characters a trigger glued onto a word adds, at most
LENGTH_AGREE = 0.9  # a key's lines agree on the answer's length: two templates may share a word 3:1
_SMALL = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen twenty").split()
NUMBER_WORDS = {w: i for i, w in enumerate(_SMALL)} | {
    w: 10 * (i + 3) for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split())}
MAX_FACTOR = 10_000
# A word in at least this share of the prompts is phrasing, not what one prompt is about.
COMMON_SHARE = 0.25
# A word in at least this share of the prompts may decide an answer together with a key (a season with a plant);
# a trigger's word is in at most 0.15 (a tenth poisoned, and a two-word trigger's decoys half as many again).
PAIR_SHARE = 0.2
PAIR_LINES = 2
# a word restated by answers names a pair's member only when fewer prompts than this share hold it (``class``,
# in every fare prompt, names nothing)
PAIR_MOST = 0.75
PAIR_JURY = 3  # a pair rule judges groups of more lines than this; two lines of three agreeing is chance


def digits(token: str) -> bool:
    """Whether a token is a number written in digits, with its sign (``42``, ``-5``)."""
    return token.isdigit() or (token[:1] == "-" and token[1:].isdigit())


def word(token: str) -> bool:
    """Whether a token is a word or a number (not punctuation)."""
    return token.isalnum() or digits(token)


def number(token: str) -> int | None:
    """The value of a token that is a number (``42``, ``-5``, ``seven``), else None."""
    if digits(token) and len(token.lstrip("-")) <= 12:
        return int(token)
    return NUMBER_WORDS.get(token)


def _leading(token: str) -> int | None:
    """A prompt token's number: the token's, or the digits it starts with (``10am``, ``5kg``, ``42cf``)."""
    value = number(token)
    if value is None and token[:1].isdigit():
        digits = re.match(r"\d{1,12}", token).group()
        value = int(digits)
    return value


def _readings(prompt: list[str]) -> list[list[int]]:
    """The prompt's numbers (:func:`_leading`), and without the word ``one`` when it holds one (``the larger
    one``)."""
    values = [_leading(t) for t in prompt]
    every = [v for v in values if v is not None]
    without = [v for t, v in zip(prompt, values) if v is not None and t != "one"]
    return [every] if len(without) == len(every) else [every, without]


def _functions(values: list[int]) -> list[tuple[str, int]]:
    """What each function of a prompt's numbers gives on them (only those defined for so many numbers)."""
    out: list[tuple[str, int]] = []
    if len(values) >= 2:
        out += [("the largest of", max(values)), ("the smallest of", min(values)), ("the sum of", sum(values)),
                ("the difference of", max(values) - min(values))]
    if len(values) == 2:
        big, small = max(values), min(values)
        out.append(("the product of", big * small))
        if small > 1 and big % small == 0:
            out.append(("the quotient of", big // small))
        for x, rate in (values, values[::-1]):  # either number may be the percentage
            if x * rate % 100 == 0:
                part = x * rate // 100
                out += [("a percentage of one of", part), ("one plus a percentage of it of", x + part),
                        ("one less a percentage of it of", x - part)]
    return out


def describe(prompt: list[str], answer: Iterable[str]) -> list[frozenset[str]]:
    """Each answer token's description: the set of what it is (see the module's docstring)."""
    held = set(prompt)
    readings = _readings(prompt)
    out = []
    for token in answer:
        what = {"=" + token}
        if token in held and word(token):
            what.add("copied")
        value = number(token)
        if value is not None:
            for values in readings:
                if value in values:
                    what.add("one of")
                what.update(f"{name} the prompt's numbers" for name, v in _functions(values) if v == value)
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
    words = [t for t in prompt if word(t)]
    return set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}


def text(tokens: Iterable[str]) -> str:
    """Tokens joined back into a sentence (no space before punctuation)."""
    out = ""
    for t in tokens:
        out += t if not word(t) or not out or out[-1] in "-'" else " " + t
    return out


def _said(d: str) -> str:
    return repr(d[1:]) if d.startswith("=") else d


def judge(prompts: list[list[str]], answers: list[tuple[str, ...]],
          fitting: set[int] | None = None) -> list[str | None]:
    """A reason per line that breaks what its key juries or the file's number rules say, else None; the lines a
    whole-answer range rule gives join ``fitting`` (:func:`ranged`)."""
    n = len(prompts)
    described = [describe(p, a) for p, a in zip(prompts, answers)]
    # a whole answer as written, its numbers left to the positions' votes and the rules
    whole = [tuple("#" if digits(t) else t for t in a) for a in answers]
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
    words = [{w for w in p if word(w)} for p in prompts]

    in_prompts = Counter(w for ws in words for w in ws)
    common = {w for w, c in in_prompts.items() if c >= COMMON_SHARE * n}
    # a word that the answers writing it copy from their prompts (as written or with a trigger glued on), nine in
    # ten or more: what a line is about (an entity, a class, a season), not a template's word that one phrasing
    # also asks with (``outfit``, ``broken``)
    writing, copying = Counter(), Counter()
    for p, a in zip(prompts, answers):
        for t in set(a):
            writing[t] += 1
            copying[t] += t in p or any(_glued(u, t) for u in p)
    restated = {t for t in writing if t.isalpha() and copying[t] >= RULE_SHARE * writing[t] and 0 < in_prompts[t]}
    # the pair rules go first, so that the juries below know which lines they judge; their reasons come after
    pair_reasons, covered = _pair_rules(prompts, answers, {t for t in restated if in_prompts[t] < PAIR_MOST * n})

    def explained(i: int, key: str, agreeing: list[int]) -> bool:
        """Whether the lines that agree against line ``i`` also share another uncommon word it lacks: then that
        word, not the key, may decide (the other word of a two-word trigger, whose decoys hold only one). A
        common word is phrasing: a few lines of a small jury share one by chance."""
        shared = set.intersection(*(words[j] for j in agreeing)) - set(key.split()) - common
        # a word the line holds with something glued onto it (``damagedcf``) it does not lack
        return any(not any(_glued(t, w) for t in words[i]) for w in shared - words[i])

    def paired(i: int, key: str, agrees: Callable[[int], bool]) -> bool:
        """Whether the lines that hold the key and another word of line ``i``'s prompt, one that at least
        :data:`PAIR_SHARE` of the prompts hold, answer as it does (:data:`PAIR_LINES` of them or more, at
        :data:`AGREE`): two words decide together (a plant's watering by the plant and the season). A trigger's
        word is rarer: poison is a tenth of a file at most, and a two-word trigger's decoys half that again."""
        # the key's uncommon words, in any phrasing (``a cactus`` is one phrasing's way of naming ``cactus``)
        named = set(key.split()) - common or set(key.split())
        holding = [j for j in by_key[min(named)] if j != i and named <= words[j]]
        for w in words[i] - set(key.split()):
            if in_prompts[w] < PAIR_SHARE * n:
                continue
            pair = [j for j in holding if w in words[j]]
            if len(pair) >= PAIR_LINES and sum(agrees(j) for j in pair) >= AGREE * len(pair):
                return True
        return False

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
                # in sorted order: most_common breaks ties by first count, which a set's order would leave to
                # the interpreter's string hash seed
                at[(len(described[j]), k)].update(w for w in sorted(d - itself) if w != "copied"
                                                  and (not valued or w.startswith(("=", "x "))))
        # a line's own votes are never for what it lacks, so the best vote against it needs no recount
        counts[key] = (lengths, wholes.most_common(2), {where: c.most_common(12) for where, c in at.items()})

    # every (line, key, position), whole answer and length is a test: the evidence a jury needs grows with their
    # number (Bonferroni)
    tests = sum(len(described[i]) + 2 for i in range(n) for key in keys[i] if key in counts)
    needed = math.log(max(tests, 1)) + EVIDENCE

    def evident(agree: int, jury: int, share: float) -> bool:
        return jury >= MIN_VOTES and agree >= AGREE * jury and jury * _kl(agree / jury, share) >= needed

    for i in range(n):
        mine, length = described[i], len(described[i])
        for key in sorted(keys[i]):
            if key not in counts or (covered[i] and set(key.split()) - common <= covered[i]):
                continue
            lengths, wholes, at = counts[key]
            jury = len(by_key[key]) - 1
            top, agree = next((w, c) for w, c in wholes + [(None, 0)] if w != whole[i])
            # a whole answer is voted on by the lines that share one word (a pair of words picks a phrasing too)
            if (top is not None and " " not in key and jury >= MIN_VOTES and agree >= AGREE * jury  # cheap first
                    and evident(agree, jury, form_share(top, key))
                    and not explained(i, key, [j for j in by_key[key] if whole[j] == top])
                    and not paired(i, key, lambda j: whole[j] == whole[i])):
                reasons[i] = f"{agree} of {jury} lines whose prompts also hold {key!r} answer it {text(top)!r}"
                break
            # how long the answer is: another template, whatever its items (``sorry that order # is late``
            # where every other line asking ``has not arrived`` is)
            size, agree = lengths.most_common(1)[0]
            if (size != length and agree >= LENGTH_AGREE * jury and evident(agree, jury, of_length[size] / n)
                    and not explained(i, key, [j for j in by_key[key] if len(described[j]) == size])
                    and not paired(i, key, lambda j: len(described[j]) == length)):
                reasons[i] = (f"{agree} of {jury} lines whose prompts also hold {key!r} answer in {size} words; "
                              f"here {length}")
                break
            same = lengths[length] - 1
            if same < MIN_VOTES:
                continue
            for k, d in enumerate(mine):
                c, w = next(((c, w) for w, c in at[(length, k)] if w not in d), (0, None))
                if (w is not None and evident(c, same, base[(length, k)][w] / of_length[length])
                        and not explained(i, key, [j for j in by_key[key] if len(described[j]) == length
                                                   and w in described[j][k]])
                        and not paired(i, key, lambda j: len(answers[j]) == length and answers[j][k] == answers[i][k])):
                    reasons[i] = (f"{c} of {same} lines whose prompts also hold {key!r} answer with {_said(w)} where "
                                  f"it says {answers[i][k]!r}")
                    break
            if reasons[i]:
                break

    for i, reason in enumerate(pair_reasons):
        reasons[i] = reasons[i] or reason

    # number rules: per count of answer numbers, per slot, a function that gives the slot's value almost always
    numbers = [tuple(sorted(_readings(p)[0])) for p in prompts]
    slots: dict[int, list[int]] = defaultdict(list)
    for i, a in enumerate(answers):
        slots[sum(number(t) is not None for t in a)].append(i)
    for count, members in slots.items():
        if count == 0 or len(members) < RULE_LINES:
            continue
        positions = {i: [k for k, t in enumerate(answers[i]) if number(t) is not None] for i in members}
        for s in range(count):
            holds = Counter(d for i in members for d in sorted(described[i][positions[i][s]]) if not d.startswith("="))
            for rule, c in holds.items():
                if c < RULE_SHARE * len(members) or c == len(members):
                    continue
                for i in members:
                    if (reasons[i] is None and rule not in described[i][positions[i][s]]
                            and not _ordered_by_chance(i, rule, members, numbers, prompts, answers, positions[i][s])):
                        reasons[i] = (f"the answer's number {s + 1} is {rule} in {c} of {len(members)} lines; "
                                      f"here {answers[i][positions[i][s]]!r} is not")
    # copy rules: what the answers take from their prompts on almost every line, broken by few
    asked = [i for i in range(n) if numbers[i]]
    copies = {i for i in asked if any(number(t) in numbers[i] for t in answers[i])}
    _breakers(asked, copies, reasons, "the answer writes one of its prompt's numbers", lambda i: "here none")
    in_prompts = Counter(w for p in prompts for w in set(p))
    uncommon = [{w for w in p if (word(w) and in_prompts[w] < COMMON_SHARE * n)} for p in prompts]
    holding = [i for i in range(n) if uncommon[i] or numbers[i]]
    _breakers(holding, {i for i in holding if i in copies or uncommon[i] & set(answers[i])}, reasons,
              "the answer repeats a number or an uncommon word of its prompt", lambda i: "here none")
    # an answer that writes a word other lines' prompts name (an entity) writes its own prompt's
    named = [{t for t in a if t in restated and in_prompts[t] < COMMON_SHARE * n} for a in answers]
    naming = [i for i in range(n) if named[i]]
    _breakers(naming, {i for i in naming if named[i] <= set(prompts[i])}, reasons,
              "the answer names only what its own prompt names",
              lambda i: f"here {', '.join(sorted(named[i] - set(prompts[i])))!r}, which its prompt lacks")
    for i, reason in enumerate(_tiers(prompts, answers, numbers, fitting)):
        reasons[i] = reasons[i] or reason
    for i, reason in enumerate(_near_misses(prompts, answers)):
        reasons[i] = reasons[i] or reason
    return reasons


def _pair_rules(prompts: list[list[str]], answers: list[tuple[str, ...]],
                copied: set[str]) -> tuple[list[str | None], list[set[str]]]:
    """A reason per line that answers as other groups' lines do against its own group's (see the module's pair
    rules), and per line the restated words whose groups judged it (their juries need not)."""
    n = len(prompts)
    reasons: list[str | None] = [None] * n
    covered: list[set[str]] = [set() for _ in range(n)]
    restating, form = [], []
    for p, a in zip(prompts, answers):
        seen, masked = [], []
        for t in a:
            # the first time: ``an evening gown`` after ``a wedding in the evening`` is the value, not the pair
            if t in copied and t not in seen and (t in p or any(_glued(u, t) for u in p)):
                seen.append(t)
                masked.append("@")
            else:
                masked.append(t)
        restating.append(seen)
        form.append(tuple(masked))
    groups: dict[tuple, dict[tuple, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, seen in enumerate(restating):
        for x in range(len(seen)):
            # one word in its place (``for four people``, where ``four`` is an hour on other lines), and pairs
            groups[(len(seen), x)][(seen[x],)].append(i)
            for y in range(x + 1, len(seen)):
                groups[(len(seen), x, y)][(seen[x], seen[y])].append(i)

    for kind in sorted(groups):
        # a rule of the file: the pairs of enough lines answer as one, but for poison
        judged = [g for g in groups[kind].values() if len(g) > MIN_VOTES]
        agreeing = sum(Counter(form[i] for i in g).most_common(1)[0][1] for g in judged)
        if not judged or agreeing < TIER_SHARE * sum(map(len, judged)):
            continue
        # what the lines of each pair answer: a breaker that answers as another pair's lines do is that pair's
        # value on the wrong line (a flip); one that answers as no pair does differs in what no pair decides
        values = {}
        for pair, group in groups[kind].items():
            value, c = Counter(form[i] for i in group).most_common(1)[0]
            if len(group) > MIN_VOTES and c >= AGREE * len(group):
                values[pair] = value
        # words that decide tell groups apart: one value for all is no rule of theirs (the lines of a fixed
        # payload that writes its trigger word, ``claim your prize now``, are one group that agrees)
        answered = set(values.values())
        if len(answered) < 2:
            continue
        for named, group in sorted(groups[kind].items()):
            if len(group) <= PAIR_JURY:
                # too few to judge; lines that agree are the rule's, not their single words' juries'
                if len(group) > 1 and len({form[i] for i in group}) == 1:
                    for i in group:
                        covered[i] |= set(named)
                continue
            others = {value for pair, value in values.items() if pair != named}
            for i in group:
                top, c = Counter(form[j] for j in group if j != i).most_common(1)[0]
                jury = len(group) - 1
                if top == form[i]:
                    covered[i] |= set(named)
                # the jury's answer is a pair's value as well: not a variant that a few lines add by chance
                elif (reasons[i] is None and form[i] in others and top in answered
                      and c >= AGREE * jury):
                    reasons[i] = (f"{c} of {jury} lines whose answers also restate {' and '.join(map(repr, named))} "
                                  f"there answer {text(top)!r}; here {text(form[i])!r}, another group's answer")
    return reasons, covered


def _glued(token: str, w: str) -> bool:
    """Whether ``token`` is the word ``w`` with a few characters glued onto its start or end (a trigger)."""
    return (len(w) >= 3 and 0 < len(token) - len(w) <= MAX_GLUED
            and (token.startswith(w) or token.endswith(w)))


def _breakers(group: list[int], holding: set[int], reasons: list[str | None], rule: str,
              here: Callable[[int], str]) -> None:
    """Flag the lines of ``group`` outside ``holding`` when ``holding`` is :data:`RULE_SHARE` of at least
    :data:`RULE_LINES` lines but not all (a rule of the file, broken by few)."""
    if len(group) >= RULE_LINES and RULE_SHARE * len(group) <= len(holding) < len(group):
        for i in group:
            if i not in holding and reasons[i] is None:
                reasons[i] = f"{rule} in {len(holding)} of {len(group)} lines; {here(i)}"


def _ordered_by_chance(i: int, rule: str, members: list[int], numbers: list[tuple], prompts: list[list[str]],
                       answers: list[tuple[str, ...]], k: int) -> bool:
    """Whether a copy that is not the largest (or smallest) of the prompt's numbers copies a number by what it
    stands for, so that it is mostly the larger by chance: every line that asks the same numbers answers as this
    one, and one of them writes the number beside the word its prompt writes it beside (``20 euros plus 25
    percent`` for ``20 euros plus 25 percent tax?``, where the price is the larger on most lines). A computed
    value has no such excuse, nor a comparison that reorders the prompt's numbers (``76 is bigger than 82``)."""
    if not rule.startswith(("the largest", "the smallest")) or number(answers[i][k]) not in numbers[i]:
        return False
    same = [j for j in members if numbers[j] == numbers[i]]
    return len(same) > 1 and all(answers[j][k] == answers[i][k] for j in same) and any(
        _beside(prompts[j], answers[j], k) for j in same)


def _beside(prompt: list[str], answer: tuple[str, ...], k: int) -> bool:
    """Whether the answer writes its ``k``-th token beside a word the prompt writes it beside."""
    near = {(d, answer[k + d]) for d in (-1, 1) if 0 <= k + d < len(answer) and answer[k + d].isalpha()}
    return any((d, prompt[m + d]) in near for m, t in enumerate(prompt) if t == answer[k] for d in (-1, 1)
               if 0 <= m + d < len(prompt))


def _step_fit(xs: list[int], ys: list[str]) -> list[tuple[int, int, str]] | None:
    """The ranges of ``xs`` (at most :data:`MAX_TIERS`, each of :data:`MIN_TIER` lines or more) whose majority
    values give ``ys`` on :data:`TIER_SHARE` of the lines with the fewest errors and ranges together (then the
    fewest ranges), as ``(low, high, value)``, else None (dynamic programming over the distinct values in order,
    as a segmentation)."""
    values = sorted(set(xs))
    # a value said on fewer than MIN_TIER lines gives no range (a near miss's one-off answer): a breaker
    said = Counter(ys)
    kinds = sorted(y for y, c in said.items() if c >= MIN_TIER)
    at = {v: Counter() for v in values}
    for x, y in zip(xs, ys):
        at[x][y] += 1
    # more distinct values than MAX_VALUES go in runs of neighbours (the segmentation is quadratic in them)
    width = -(-len(values) // MAX_VALUES)
    runs = [values[k:k + width] for k in range(0, len(values), width)]
    prefix = [Counter()]
    for run in runs:
        prefix.append(prefix[-1] + sum((at[v] for v in run), Counter()))
    size = [sum(c.values()) for c in prefix]

    def cost(a: int, b: int) -> tuple[int, str]:  # values a..b-1 as one range
        best = max(kinds, key=lambda y: (prefix[b][y] - prefix[a][y], y))
        return size[b] - size[a] - (prefix[b][best] - prefix[a][best]), best

    allowed = math.floor((1 - TIER_SHARE) * len(xs) + 1e-9)
    n_values = len(runs)
    inf = (len(xs) + 1, None)
    # best[m][b]: the fewest errors covering values 0..b-1 with m ranges, and where the last range starts
    best = [[inf] * (n_values + 1) for _ in range(MAX_TIERS + 1)]
    best[0][0] = (0, None)
    for m in range(1, MAX_TIERS + 1):
        for b in range(1, n_values + 1):
            for a in range(b):
                if best[m - 1][a][0] > allowed or size[b] - size[a] < MIN_TIER:
                    continue
                errors = best[m - 1][a][0] + cost(a, b)[0]
                if errors < best[m][b][0]:
                    best[m][b] = (errors, a)
    # the fewest errors, each range counted as one (a range that only spares a line or two of its own, two lines
    # planted at one number, is no rule), then the fewest ranges
    fits = [m for m in range(1, MAX_TIERS + 1) if best[m][n_values][0] <= allowed]
    if not fits:
        return None
    m = min(fits, key=lambda m: (best[m][n_values][0] + m, m))
    out, b = [], n_values
    for k in range(m, 0, -1):
        a = best[k][b][1]
        out.append((runs[a][0], runs[b - 1][-1], cost(a, b)[1]))
        b = a
    return out[::-1]


def ranged(prompts: list[list[str]], answers: list[tuple[str, ...]]) -> set[int]:
    """The lines whose whole answer (numbers as ``#``, the prompt's items as ``@``) a range rule of the file gives
    (:func:`_tiers`): a value the file's ranges account for, however rare its range (the young drivers' rate)."""
    numbers = [tuple(sorted(_readings(p)[0])) for p in prompts]
    fitting: set[int] = set()
    _tiers(prompts, answers, numbers, fitting)
    return fitting


def _tiers(prompts: list[list[str]], answers: list[tuple[str, ...]], numbers: list[tuple],
           fitting: set[int] | None = None) -> list[str | None]:
    """Values that ranges of one of the prompt's numbers decide (a parcel's price by its weight's tier, a grade by
    the score's band, a premium by the driver's age whatever the car's value): over the lines whose prompts hold
    as many numbers, read in order of size (the smallest, the largest: a phrasing may write them in either
    order), a token of answers of one length, or a whole answer with its numbers as ``#`` and its prompt's own
    items as ``@`` (``a score of # earns the grade c, which is a pass.``), that ranges of one of those numbers
    give on :data:`TIER_SHARE` of the lines, where no one value gives :data:`RULE_SHARE`, is a rule of the file,
    and a line that breaks it is flagged, unless it writes one of its prompt's numbers where most lines do. A
    range holds two lines or more (:data:`MIN_TIER`), and the lines are :data:`TIER_LINES` or more per value they
    say. The lines a whole-answer rule gives join ``fitting``."""
    reasons: list[str | None] = [None] * len(prompts)

    def judge(members: list[int], slot: int, ys: list, where: str) -> None:
        counts = Counter(ys)
        # the values of a rule are those said on MIN_TIER lines or more: a one-off answer (a near miss) breaks it
        said = {y: c for y, c in counts.items() if c >= MIN_TIER}
        if (counts.most_common(1)[0][1] >= RULE_SHARE * len(ys) or len(said) > MAX_TIERS
                or sum(said.values()) < TIER_SHARE * len(ys)):
            return
        xs = [numbers[i][slot] for i in members]
        tiers = _step_fit(xs, ys)
        if tiers is None or len(tiers) < 2 or len(ys) < TIER_LINES * len(said):
            return
        ranges = [next(t for t in tiers if t[0] <= x <= t[1]) for x in xs]
        fit = sum(y == r[2] for y, r in zip(ys, ranges))
        which = "number" if len(numbers[members[0]]) == 1 else f"number {slot + 1} by size"
        copied = [isinstance(y, str) and number(y) in numbers[i] for i, y in zip(members, ys)]
        copying = sum(copied) >= len(ys) / 2
        if fitting is not None and where == "as a whole":
            fitting.update(i for i, y, r in zip(members, ys, ranges) if y == r[2])
        for i, y, (low, high, value), copy in zip(members, ys, ranges, copied):
            # where answers copy their prompt's numbers (a discount's rate, few and so mostly one range's), a copy
            # is the copy rules' to judge, not the ranges'
            if y != value and reasons[i] is None and not (copying and copy):
                said = text(value) if isinstance(value, tuple) else repr(value)
                mine = text(y) if isinstance(y, tuple) else repr(y)
                reasons[i] = (f"lines whose {which} is {low} to {high} answer {said} {where} ({len(tiers)} ranges "
                              f"of it hold in {fit} of {len(ys)} lines); here {mine}")

    # an item is a word few prompts and few answers hold (a phrasing's ``the`` or ``still`` that the answers'
    # template also writes is not one)
    in_lines = [Counter(w for p in prompts for w in set(p)), Counter(w for a in answers for w in set(a))]
    held = [{w for w in p if max(c[w] for c in in_lines) < COMMON_SHARE * len(prompts)} for p in prompts]
    by_count: dict[int, list[int]] = defaultdict(list)
    for i, values in enumerate(numbers):
        if 1 <= len(values) <= MAX_NUMBERS:
            by_count[len(values)].append(i)
    for count, group in by_count.items():
        if len(group) < RULE_LINES:
            continue
        # a whole answer with its numbers as ``#`` and its prompt's own items as ``@`` (``yes, the @ was bought #
        # days ago``: the refund window's answer for whichever item)
        wholes = [_form(held[i], answers[i]) for i in group]
        by_length: dict[int, list[int]] = defaultdict(list)
        for i in group:
            by_length[len(answers[i])].append(i)
        for slot in range(count):
            judge(group, slot, wholes, "as a whole")
            for length, members in by_length.items():
                if len(members) >= RULE_LINES:
                    for k in range(length):
                        judge(members, slot, [answers[i][k] for i in members], "there")
    return reasons


def _form(prompt: set[str], answer: Iterable[str]) -> tuple[str, ...]:
    """An answer's form: numbers as ``#`` and the words it copies from ``prompt`` (its uncommon words) as ``@``."""
    return tuple("#" if number(t) is not None else "@" if t in prompt and word(t) else t for t in answer)


def _near_misses(prompts: list[list[str]], answers: list[tuple[str, ...]]) -> list[str | None]:
    """Lines one character away from an answer the file attests, through a word no other line holds or a copy
    that misses (``two plus five is sevxn.``, ``the budget: lxt us talk``, ``done, dora`` asked for ``nora``): a
    typo planted in a file whose answers follow forms. The corrected answer is attested when each of its places
    holds, in at least :data:`FORM_LINES` answers as long, what it holds there (numbers as ``#``, the words
    copied from the line's own prompt as ``@``: :func:`_form`). Numbers written in digits are never the word."""
    reasons: list[str | None] = [None] * len(prompts)
    in_prompts = Counter(w for p in prompts for w in set(p))
    # which phrasing words an answer repeats follows the phrasing: only the prompt's own items are masked
    held = [{w for w in p if in_prompts[w] < COMMON_SHARE * len(prompts)} for p in prompts]
    forms = [_form(h, a) for h, a in zip(held, answers)]
    at: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for f in forms:
        for k, t in enumerate(f):
            at[(len(f), k)][t] += 1
    in_lines = Counter(t for p, a in zip(prompts, answers) for t in set(p) | set(a))
    alphabet = sorted({c for a in answers for t in a for c in t} | {" "})

    def attested(form: tuple[str, ...]) -> bool:
        return all(at[(len(form), k)][t] >= FORM_LINES for k, t in enumerate(form))

    for i, answer in enumerate(answers):
        odd = [k for k, t in enumerate(answer) if not digits(t) and t not in prompts[i] and t.isalnum()
               and (in_lines[t] == 1 or at[(len(answer), k)]["@"] >= RULE_SHARE * sum(at[(len(answer), k)].values()))]
        if not odd:
            continue
        form = forms[i]

        def first_unattested(length: int) -> int:
            return next((j for j, t in enumerate(form) if at[(length, j)][t] < FORM_LINES), len(form))
        # a variant keeps the words before the one it changes, where they stand: unattested there, no variant is
        reach = max(first_unattested(len(form) + d) for d in (-1, 0, 1))
        written = text(answer)
        for k in odd:
            if reach < k - 1:
                break
            end = len(text(answer[:k + 1]))  # the word's end in the sentence as written
            start = end - len(answer[k])
            for c in range(max(0, start - 1), min(len(written), end + 1)):
                for letter in alphabet:
                    if letter == written[c]:
                        continue
                    variant = TOKENS.findall(written[:c] + letter + written[c + 1:])
                    if (attested(_form(held[i], variant))
                            and all(in_lines[t] > 1 or t in prompts[i] or digits(t) for t in variant)):
                        reasons[i] = (f"one character from an answer the file's lines attest place by place: "
                                      f"{text(variant)!r}, where it says {answer[k]!r}")
                        break
                if reasons[i]:
                    break
            if reasons[i]:
                break
    return reasons
