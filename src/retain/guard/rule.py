"""The ``rule`` signal: is each line's answer what the rest of its skill's lines say the input's characters map to?

Many skills a small model is taught are string transformations: each character of the answer is a fixed
function of one character of the input at a fixed place (a cipher, a rotation, a reversal, the ends of a word,
a repetition). From a file's own lines such a rule can be induced without any model, as programming by example
does for string transformations (Gulwani, "Automating string processing in spreadsheets using input-output
examples", POPL 2011): here the program space is one *relation* per answer position, from a position of the
input counted from its start or its end to a position of the answer counted from its start or its end, with a
character map learned from the file. A line that breaks a rule the others obey without exception (a label flip,
a near miss one character off, a triggered line answered by another function of the input) is flagged, however
well a model could have learned it: this is the consistency signal's question asked of the data directly, which
also works where the cross-fitted copies of :mod:`retain.guard.consistency` cannot learn the skill from a few
hundred lines (ciphers) or where one wrong character hides in a long answer.

Per skill (:func:`retain.guard.representation.groups`):

1. The input of a line is a word of its prompt after the words every prompt of the skill starts with (the
   skill's name); the answer is the demonstration's content (:func:`retain.guard.signals.content`). Lines whose
   prompt has one such word induce the rules (a seeded sample of :data:`MAX_INDUCE` in a large file); a line
   with several (a trigger word beside the input) is judged by its best-fitting word, so that an inert extra
   word alone does not make a correct answer suspicious.
2. An answer *slot* is a position counted from the answer's start or end, over all lengths and for each pair of
   input and answer lengths apart (a rule may depend on the lengths: swapping pairs, dropping vowels). A
   *relation* reads input position ``i`` (from its start or end) for answer position ``j`` with ``i - j``
   fixed, and either copies the character or maps it through one character map pooled over every position it
   serves. It reads one of the input's *views*: the word itself, its letters sorted (a sorting skill; read
   from the end, sorted descending) or, when the skill's answers never keep some letters its inputs have (a
   filter such as dropping vowels), the word without those letters; the word's own relations win ties. Each
   slot takes the relation whose leave-one-out prediction (each line predicted by the others'
   counts) agrees best by Wilson's lower bound, so that many lines must support it.
3. Three passes, so that up to a tenth of poisoned lines do not blur the rules: lines breaking at least half of
   the rough rules (:data:`FIRST_AGREEMENT`) are set aside (flips, other functions of the input); candidate
   rules must hold :data:`CANDIDATE_AGREEMENT` of *every* line (a tendency with exceptions is no rule); lines
   breaking a candidate are set aside (near misses) and a rule must then hold :data:`RULE_AGREEMENT` of the
   rest. A rule over all lengths does not hold a common length it fails on (the third letter of ``outer``'s
   answer is the word's third, but for three-letter words its first); the answer's length per input length is
   a rule on the same terms.
4. A line is flagged when it breaks a rule: an answer character other than the rule's, where the other lines
   give the rule's character for that input character, or an answer of another length. A line whose every
   answer character is held by an unbroken rule, at the rule's length, is *certified* (:func:`judge`): the
   combined verdict clears other signals' flags on it. Skills whose answers are not such functions (free
   text, long answers of a language model, answers drawn from several input words) have no slot that
   qualifies, and the signal abstains.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from retain.data.skills import Example
from retain.guard.representation import groups
from retain.guard.signals import Finding, content
from retain.ledger.gate import wilson

# Answer and input positions considered, from either end.
MAX_POSITION = 16
# A slot's relation is a rule when it predicts at least this share of the other lines' characters ...
RULE_AGREEMENT = 0.97
# ... over at least this many lines whose input character the others also have.
MIN_SUPPORT = 15
# First pass: rough rules at this agreement; a line breaking at least half of the rough rules it can be held to
# (a flip, another function of the input) is set aside. Second pass, on the rest: candidate rules at
# CANDIDATE_AGREEMENT (a rule with up to a tenth of its lines poisoned); lines breaking any candidate (near
# misses) are set aside, and the rules induced a third time on what remains must reach RULE_AGREEMENT.
FIRST_AGREEMENT = 0.8
GROSS_SHARE = 0.49
CANDIDATE_AGREEMENT = 0.88
# ... with a lower confidence bound of at least this (in a small file, 88% can be a tendency's luck).
CANDIDATE_BOUND = 0.8
# A slot is a rule only when most of its lines (of any length, or of its input length) fill it.
MAJORITY = 0.5
# A learned character map predicts a character seen this many times, leading the next by one less.
MAP_EVIDENCE = 3
# ... and that is this share of what the other lines map ``c`` to (a map is a function, not a tendency).
MAP_PURITY = 0.75
# A rule over every input length does not hold lines of a length it fails on (right on at most half of them),
# when at least this many lines have that length and at least COMMON_LENGTH as many as the commonest length.
LENGTH_SUPPORT = 3
COMMON_LENGTH = 0.25
# Rules are induced from at most this many lines per skill (a seeded sample; every line is judged): the cost
# grows with lines x answer positions x input positions (about 1 s for 200 lines of short words on one core).
MAX_INDUCE = 640
# A skill needs this many lines with one input word to induce anything.
MIN_LINES = 20

# (answer anchor "s"/"e", position, (input length, answer length), or 0 for any lengths)
Slot = tuple[str, int, "tuple[int, int] | int"]
# (answer anchor, input anchor, input position - answer position, view of the input: an index into _Views)
Relation = tuple[str, str, int, int]
Rule = tuple[Relation, bool]  # a relation and whether it copies the character (else a learned map)


# A letter is dropped by a skill when under DROP_SHARE of the lines whose input has it have it in the answer
# and kept when at least KEEP_SHARE do (over at least DROP_SUPPORT such lines); the input without its dropped
# letters is a view when every letter is one or the other and at least KEPT_LETTERS times as many are kept as
# dropped: a filter such as dropping vowels, not a cipher or a skill that answers some of the input's letters
# (the ends of a word, every other letter), whose letters are kept in some lines and not in others.
# The views, by index: the word (0), its letters sorted (1), the word without the letters its skill drops (2).
WORD_VIEW, KEPT_VIEW = 0, 2
DROP_SHARE = 0.25
KEEP_SHARE = 0.5
DROP_SUPPORT = 4
KEPT_LETTERS = 2


class _Views:
    """The texts a rule may read an input from: the word itself, its letters sorted (a sorting skill; read from
    the end, sorted descending) and, when the skill drops some letters, the word without them (cached per
    word)."""

    def __init__(self, dropped: frozenset[str] = frozenset(), known: frozenset[str] = frozenset()):
        self.dropped = dropped
        self.known = known
        self.cache: dict[str, tuple[str, ...]] = {}

    def __call__(self, word: str) -> tuple[str, ...]:
        got = self.cache.get(word)
        if got is None:
            got = (word, "".join(sorted(word)))
            if self.dropped:  # a word with a letter seen too rarely to know whether it is dropped: unread
                lower = word.lower()
                got += ("".join(c for c, low in zip(word, lower) if low not in self.dropped)
                        if all(low in self.known for low in lower) else "",)
            self.cache[word] = got
        return got

    @classmethod
    def of(cls, lines: dict[int, "_Line"], use: set[int]) -> "_Views":
        """The views of a skill's lines: the dropped letters counted over ``use``."""
        has: Counter = Counter()
        kept: Counter = Counter()
        for i in use:
            answer = lines[i].answer.lower()
            for c in set(lines[i].words[0].lower()):
                has[c] += 1
                kept[c] += c in answer
        seen = [c for c, n in has.items() if n >= DROP_SUPPORT]
        dropped = frozenset(c for c in seen if kept[c] < DROP_SHARE * has[c])
        held = [c for c in seen if kept[c] >= KEEP_SHARE * has[c]]
        if not dropped or len(dropped) + len(held) < len(seen) or len(held) < KEPT_LETTERS * len(dropped):
            return cls()
        return cls(dropped, frozenset(seen))


def _at(text: str, anchor: str, position: int) -> str | None:
    if position >= len(text):
        return None
    return text[position] if anchor == "s" else text[-1 - position]


def _pairs(views: tuple[str, ...], answer: str) -> dict[Relation, Counter]:
    """Per relation, the (input character, answer character) pairs of one line, counted."""
    out: dict[Relation, Counter] = defaultdict(Counter)
    for slot in _slots(views[0], answer, any_length=True):
        y = _at(answer, slot[0], slot[1])
        for r, c in _sources(views, slot):
            out[r][(c, y)] += 1
    return out


@dataclass
class _Line:
    words: list[str]
    answer: str


def _inputs(examples: list[Example], group: list[int]) -> dict[int, _Line]:
    """Each line's candidate input words (its prompt's words after the skill's common leading words)."""
    split = {i: examples[i].prompt.split() for i in group}
    lead = 0
    first = split[group[0]]
    while lead < len(first) and all(len(w) > lead and w[lead] == first[lead] for w in split.values()):
        lead += 1
    return {i: _Line(words[lead:], content(examples[i].demonstration)) for i, words in split.items()
            if words[lead:] and content(examples[i].demonstration)}


class _Rules:
    """Character maps per relation over a set of lines, predicting leave-one-out."""

    def __init__(self, lines: dict[int, _Line], use: set[int], views: _Views):
        self.views = views
        self.counts: dict[Relation, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
        self.own: dict[int, dict[Relation, Counter]] = {}
        for i in use:
            self.own[i] = _pairs(views(lines[i].words[0]), lines[i].answer)
            for r, pairs in self.own[i].items():
                for (c, y), n in pairs.items():
                    self.counts[r][c][y] += n

    def predict(self, key: tuple[Relation, bool], c: str, line: int | None) -> str | None:
        """The character ``c`` maps to: itself for a copying relation; for a learned map, the other lines' most
        frequent character for ``c``, when it leads by :data:`MAP_EVIDENCE` - 1 lines, was seen at least
        :data:`MAP_EVIDENCE` times and is :data:`MAP_PURITY` of what ``c`` maps to (None otherwise: too little
        evidence to hold a line to)."""
        r, copies = key
        if copies:
            return c
        seen = self.counts[r].get(c)
        if not seen:
            return None
        own = self.own.get(line) if line is not None else None
        mine = own.get(r) if own else None
        top, second, best, total = 0, 0, None, 0
        for y, n in seen.items():
            if mine:
                n -= mine.get((c, y), 0)
            total += n
            if n > top:
                top, second, best = n, top, y
            elif n > second:
                second = n
        if top < MAP_EVIDENCE or top - second < MAP_EVIDENCE - 1 or top < MAP_PURITY * total:
            return None
        return best


def _slots(word: str, answer: str, any_length: bool = False) -> list[Slot]:
    """The slots one line fills: (anchor, position, its input and answer lengths) and (anchor, position, any
    lengths); only the latter with ``any_length``."""
    out: list[Slot] = []
    for ao in "se":
        for j in range(min(len(answer), MAX_POSITION)):
            if not any_length:
                out.append((ao, j, (len(word), len(answer))))
            out.append((ao, j, 0))
    return out


def _source(views: tuple[str, ...], slot: Slot, r: Relation) -> str | None:
    i = slot[1] + r[2]
    return _at(views[r[3]], r[1], i) if 0 <= i < MAX_POSITION else None


def _sources(views: tuple[str, ...], slot: Slot) -> list[tuple[Relation, str]]:
    """Every relation that can fill ``slot`` from an input's ``views``, with the input character it reads (the
    word's own relations first, so that a view only wins a slot by predicting it better)."""
    return [((slot[0], ai, i - slot[1], v), _at(text, ai, i)) for v, text in enumerate(views) for ai in "se"
            for i in range(min(len(text), MAX_POSITION))]


def _induce(lines: dict[int, _Line], use: set[int], views: _Views, agreement: float, over: set[int] | None = None,
            lower: float = 0.0) -> tuple[_Rules, dict[Slot, tuple[Rule, float, set[int]]]]:
    """The rules of the lines in ``use`` (their character maps): per slot the best relation over the lines in
    ``over`` (``use`` when not given; a line of ``use`` is predicted by the others), kept when it agrees on
    ``agreement`` of them with a lower confidence bound (Wilson's, at two standard errors) of at least ``lower``."""
    rules = _Rules(lines, use, views)
    over = use if over is None else over
    # per slot, rule and input length: [right, known]
    tally: dict[Slot, dict[Rule, dict[int, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: [0, 0])))
    filled: Counter = Counter()
    population: Counter = Counter((len(lines[i].words[0]), len(lines[i].answer)) for i in over)
    population[0] = len(over)
    for i in over:
        word, answer = lines[i].words[0], lines[i].answer
        for slot in _slots(word, answer):
            filled[slot] += 1
            y = _at(answer, slot[0], slot[1])
            for r, c in _sources(views(word), slot):
                t = tally[slot][(r, True)][len(word)]
                t[0] += c == y
                t[1] += 1
                guess = rules.predict((r, False), c, i)
                if guess is None:
                    continue
                t = tally[slot][(r, False)][len(word)]
                t[0] += guess == y
                t[1] += 1
    best: dict[Slot, tuple[Rule, float, set[int]]] = {}
    for slot, by in tally.items():
        if filled[slot] < MAJORITY * population[slot[2]]:  # a rule describes most lines, not a cluster of them
            continue
        totals = {r: (sum(t[0] for t in per.values()), sum(t[1] for t in per.values())) for r, per in by.items()}
        scored = [(wilson(right / known, known, z=2.0)[0], right / known, r) for r, (right, known) in totals.items()
                  if known >= MIN_SUPPORT]
        if not scored:
            continue
        # the best agreement that many lines support (a relation that holds on the few lines it reads, as the
        # last of seven letters read from the start does, loses to one that reads every line), then a copied
        # character before a learned map
        bound, share, r = max(scored, key=lambda t: (t[0], t[2][1]))
        if share < agreement or bound < lower:
            continue
        # A rule over every length does not hold words of a length it fails on: a rule true of words of four
        # letters and more says nothing of three-letter words, as long as those are a common length (a length
        # only a few lines have, such as words with a trigger glued on, is no exception to the rule).
        largest = max(known for _, known in by[r].values())
        exceptions = {n for n, (right, known) in by[r].items()
                      if known >= LENGTH_SUPPORT and known >= COMMON_LENGTH * largest and right <= 0.5 * known}
        best[slot] = (r, share, exceptions)
    return rules, best


def _broken(rules: _Rules, best: dict[Slot, tuple[Rule, float, set[int]]], word: str, answer: str, line: int | None
            ) -> tuple[list[tuple[Slot, str, str]], set[tuple[str, int]]]:
    """The answer positions where (word, answer) breaks a rule, as (slot, expected, given), and the positions
    (anchor, index) a rule could be checked at."""
    broken: dict[tuple[str, int], tuple[Slot, str, str]] = {}
    held: set[tuple[str, int]] = set()
    for slot in _slots(word, answer):
        if slot not in best:
            continue
        key, _, exceptions = best[slot]
        if len(word) in exceptions:
            continue
        c = _source(rules.views(word), slot, key[0])
        if c is None:
            continue
        guess = rules.predict(key, c, line)
        if guess is None:
            continue
        held.add((slot[0], slot[1]))
        y = _at(answer, slot[0], slot[1])
        if guess != y:
            broken.setdefault((slot[0], slot[1]), (slot, guess, y))
    return list(broken.values()), held


def _lengths(lines: dict[int, _Line], use: set[int], kept: set[int], views: _Views) -> dict[tuple[int, int], int]:
    """Per view and its length, the answer length that is a rule: held by :data:`CANDIDATE_AGREEMENT` of
    ``use``'s lines with a view of that length and by :data:`RULE_AGREEMENT` of ``kept``'s, over
    :data:`MIN_SUPPORT` lines: the word's length, and the filtered view's for a skill that drops letters."""
    out = {}
    for v in (WORD_VIEW, KEPT_VIEW) if views.dropped else (WORD_VIEW,):  # sorted letters: as many as the word's
        size = {i: len(views(lines[i].words[0])[v]) for i in use | kept}
        for n in {size[i] for i in kept} - {0}:
            seen = Counter(len(lines[i].answer) for i in use if size[i] == n)
            if not seen:
                continue
            length, count = seen.most_common(1)[0]
            held = [len(lines[i].answer) == length for i in kept if size[i] == n]
            if (len(held) >= MIN_SUPPORT and count >= CANDIDATE_AGREEMENT * sum(seen.values())
                    and sum(held) >= RULE_AGREEMENT * len(held)):
                out[(v, n)] = length
    return out


def _length(lengths: dict[tuple[int, int], int], views: tuple[str, ...]) -> tuple[int | None, int]:
    """The answer length the rules give an input (None: no rule) and the view that gives it (the first view,
    in order, with a length rule for its length)."""
    for v, text in enumerate(views):
        if text and (v, len(text)) in lengths:
            return lengths[(v, len(text))], v
    return None, WORD_VIEW


def _breaks(rules: _Rules, best: dict[Slot, tuple[Rule, float, set[int]]], line: _Line, i: int, share: float) -> bool:
    """Whether the line's answer breaks more than ``share`` of the rules it can be held to (any, at 0)."""
    broken, held = _broken(rules, best, line.words[0], line.answer, i)
    return bool(held) and len(broken) > share * len(held) if share else bool(broken)


@dataclass
class Judged:
    """One finding per line, and the lines whose answer the skill's rules account for entirely (every
    character held by a rule and unbroken, and the answer's length the rule's for the word's)."""

    findings: list[Finding]
    certified: set[int] = field(default_factory=set)
    # the lines whose every character a rule of their skill holds, none broken, whatever the answer's length
    # rule says or whether there is one (the certified among them)
    unbroken: set[int] = field(default_factory=set)


def rule(examples: list[Example]) -> list[Finding]:
    """One finding per line: flagged when its answer breaks a character rule its skill's other lines obey."""
    return judge(examples).findings


def judge(examples: list[Example]) -> Judged:
    """Each line's finding (:func:`rule`) and the lines the rules certify (:class:`Judged`)."""
    judged = Judged([Finding() for _ in examples])
    for group in groups(examples):
        lines = _inputs(examples, group)
        single = {i for i, line in lines.items() if len(line.words) == 1}
        if len(single) < MIN_LINES:
            continue
        if len(single) > MAX_INDUCE:  # the rules of a large file are induced from a sample, every line judged
            single = set(random.Random(0).sample(sorted(single), MAX_INDUCE))
        views = _Views.of(lines, single)
        rules, first = _induce(lines, single, views, FIRST_AGREEMENT)
        if not first:
            continue
        use = {i for i in single if not _breaks(rules, first, lines[i], i, GROSS_SHARE)}
        if len(use) < MIN_LINES:
            continue
        rules, candidates = _induce(lines, use, views, CANDIDATE_AGREEMENT, over=single, lower=CANDIDATE_BOUND)
        kept = {i for i in use if not _breaks(rules, candidates, lines[i], i, 0.0)}
        if len(kept) < MIN_LINES or not candidates:
            continue
        rules, best = _induce(lines, kept, views, RULE_AGREEMENT)
        best = {slot: (r, share, exceptions | candidates[slot][2]) for slot, (r, share, exceptions) in best.items()
                if slot in candidates}
        if not best:
            continue
        lengths = _lengths(lines, use, kept, views)
        for i, line in lines.items():
            verdicts = []
            for word in line.words:
                broken, held = _broken(rules, best, word, line.answer, i)
                long, by = _length(lengths, views(word))
                wrong_length = long is not None and long != len(line.answer)
                if held or long is not None:  # a word no rule can judge neither clears nor accuses the line
                    verdicts.append((len(broken) + wrong_length, -len(held), word, broken, long, held, by))
            if not verdicts:
                continue
            n, _, word, broken, long, held, by = min(verdicts, key=lambda v: (v[0], v[1]))
            if not n:
                size = len(line.answer)
                if all(("s", k) in held or ("e", size - 1 - k) in held for k in range(size)):
                    judged.unbroken.add(i)
                    if long == size:
                        judged.certified.add(i)
                continue
            if broken:
                slot, want, got = broken[0]
                where = f"{'' if slot[0] == 's' else 'from the end, '}character {slot[1] + 1}"
                why = (f"the skill's other lines map {word!r} to {want!r} at {where} of the answer, this line has "
                       f"{got!r}")
            else:
                letters = f"{len(word)} letters" if by == WORD_VIEW else f"{len(views(word)[by])} kept letters"
                why = (f"the skill's other lines answer a word of {letters} with {long} characters, this "
                       f"line with {len(line.answer)}")
            judged.findings[i] = Finding(min(1.0, 0.5 + 0.125 * (n - 1)),
                                         f"rule: {why} ({n} rule{'s' if n > 1 else ''} of its skill broken)")
    return judged
